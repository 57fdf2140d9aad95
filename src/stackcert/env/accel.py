"""Accelerator detection: run each vendor's tool (short timeout) and parse it by its named strategy.

A missing tool, a tool that hangs past its timeout, a failing tool or output we cannot parse all
become notes in the result; detection itself never raises.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from stackcert.env.vendors import VENDORS, DetectCommand, ParseSpec, Vendor


class Device(BaseModel):
    """One accelerator device."""

    index: int
    name: str = ""
    memory_total_mib: int | None = None


class Parsed(BaseModel):
    """What a tool's output parsed into."""

    devices: list[Device] = Field(default_factory=list)
    driver_version: str | None = None


class AcceleratorReport(BaseModel):
    """One vendor's devices on this host, with its registry values."""

    vendor: str
    display: str
    tool: str
    count: int
    devices: list[Device]
    driver_version: str | None
    visible_devices_env: str
    visible_devices: str | None = Field(None, description="current value of the variable, if set")
    flagcx_adaptor: str | None
    flagtree_backend: str | None


class ParseError(ValueError):
    """The tool ran but its output does not look like what the registry expects."""


def _to_int(text: str | None) -> int | None:
    if text is None:
        return None
    m = re.search(r"\d+(\.\d+)?", text.replace(",", ""))
    return int(float(m.group(0))) if m else None


def _parse_csv(spec: ParseSpec, text: str) -> Parsed:
    out = Parsed()
    for row in csv.reader(io.StringIO(text)):
        cells = [c.strip() for c in row]
        if not cells or cells == [""]:
            continue
        if len(cells) != len(spec.columns):
            raise ParseError(f"expected {len(spec.columns)} CSV columns, got {len(cells)}: {row!r:.80}")
        rec = dict(zip(spec.columns, cells, strict=True))
        index = _to_int(rec.get("index"))
        if index is None:
            raise ParseError(f"device index is not a number: {rec.get('index')!r:.40}")
        out.devices.append(
            Device(
                index=index, name=rec.get("name", ""), memory_total_mib=_to_int(rec.get("memory_total_mib"))
            )
        )
        out.driver_version = rec.get("driver_version") or out.driver_version
    return out


def _parse_regex(spec: ParseSpec, text: str) -> Parsed:
    out = Parsed()
    if spec.device_regex:
        for m in re.finditer(spec.device_regex, text, flags=re.MULTILINE):
            groups = m.groupdict()
            index = groups.get("device_id") or groups["index"]
            out.devices.append(
                Device(
                    index=int(index),
                    name=(groups.get("name") or "").strip(),
                    memory_total_mib=_to_int(groups.get("memory_total_mib")),
                )
            )
    if spec.driver_regex:
        found = re.search(spec.driver_regex, text, flags=re.MULTILINE)
        out.driver_version = found.group("driver") if found else None
    return out


def _first(mapping: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


def _parse_json_cards(spec: ParseSpec, text: str) -> Parsed:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ParseError("JSON top level is not an object")
    out = Parsed()
    for key in sorted(data):
        value = data[key]
        if not re.match(spec.card_key_regex, key) or not isinstance(value, dict):
            if isinstance(value, dict) and out.driver_version is None:
                driver = _first(value, spec.driver_keys)
                out.driver_version = str(driver) if driver is not None else None
            continue
        mem = _first(value, spec.memory_keys)
        mem_mib = int(float(mem) * spec.memory_scale) if mem is not None else None
        out.devices.append(
            Device(
                index=_to_int(key) or 0,
                name=str(_first(value, spec.name_keys) or ""),
                memory_total_mib=mem_mib,
            )
        )
    return out


_PARSERS = {"csv": _parse_csv, "regex": _parse_regex, "json_cards": _parse_json_cards}


def parse_output(spec: ParseSpec, text: str) -> Parsed:
    """Parse one tool's stdout with the registry's strategy. Raises ParseError on garbage."""
    parsed = _PARSERS[spec.strategy](spec, text)
    if not parsed.devices:
        raise ParseError("no device found in the output")
    return parsed


def _run_probe(argv: tuple[str, ...], timeout: float) -> tuple[str | None, str | None]:
    """(stdout, None) or (None, why-not). Never raises."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None, "not on PATH"
    try:
        # Own session, so a timeout kills the tool *and* anything it forked that holds our pipes.
        proc = subprocess.Popen(
            [exe, *argv[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return None, f"could not run: {exc.strerror or exc}"
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, f"timed out after {timeout:g}s"
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return None, f"exit code {done.returncode}: {tail[0][:160]}"
    return done.stdout, None


def detect_vendor(
    vendor: Vendor, *, timeout: float = 5.0, environ: dict[str, str] | None = None
) -> tuple[AcceleratorReport | None, list[str]]:
    """Try each detection command of one vendor; return a report (or None) and notes."""
    notes: list[str] = []
    env = environ or {}
    for cmd in vendor.detect:
        report, note = _detect_one(vendor, cmd, timeout, env)
        if report is not None:
            return report, notes
        if note:
            notes.append(note)
    return None, notes


def _detect_one(
    vendor: Vendor, cmd: DetectCommand, timeout: float, env: dict[str, str]
) -> tuple[AcceleratorReport | None, str | None]:
    tool = cmd.argv[0]
    out, why = _run_probe(cmd.argv, timeout)
    if out is None:
        # A tool that is simply absent is the normal case on other vendors' hosts: no note.
        return None, None if why == "not on PATH" else f"{vendor.key}: {tool} {why}"
    try:
        parsed = parse_output(cmd.parse, out)
    except (ParseError, ValueError, KeyError) as exc:
        return None, f"{vendor.key}: {tool} output not understood ({exc})"
    return (
        AcceleratorReport(
            vendor=vendor.key,
            display=vendor.display,
            tool=tool,
            count=len(parsed.devices),
            devices=parsed.devices,
            driver_version=parsed.driver_version,
            visible_devices_env=vendor.visible_devices_env,
            visible_devices=env.get(vendor.visible_devices_env),
            flagcx_adaptor=vendor.flagcx_adaptor,
            flagtree_backend=vendor.flagtree_backend,
        ),
        None,
    )


def detect_accelerators(
    *, timeout: float = 5.0, vendors: Iterable[Vendor] = VENDORS, environ: dict[str, str] | None = None
) -> tuple[list[AcceleratorReport], list[str]]:
    """Every vendor in the registry whose tool answers; plus notes on tools that misbehaved."""
    reports: list[AcceleratorReport] = []
    notes: list[str] = []
    for vendor in vendors:
        report, vnotes = detect_vendor(vendor, timeout=timeout, environ=environ)
        notes.extend(vnotes)
        if report is not None:
            reports.append(report)
    return reports, notes
