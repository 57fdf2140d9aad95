"""Protect the vendor build: the torch and triton already installed must not be replaced.

Two defences: (1) a dry run (`pip install --dry-run --report`) that lists what pip *would*
install, so a step that would replace a protected package is refused before it touches anything;
(2) a constraints file that pins the installed versions for the real install.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from stackcert.engines.process import run_command
from stackcert.errors import UsageError

_VERSIONS = r"""
import importlib.metadata as md, json, platform, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        out[name] = None
print(json.dumps({"python": platform.python_version(), "versions": out}))
"""


class Replacement(BaseModel):
    """A protected package a pip step would replace."""

    name: str
    installed: str
    would_install: str | None = Field(None, description="None when pip failed before choosing a version")


class ProtectionCheck(BaseModel):
    """The dry-run verdict on one pip step."""

    ok: bool
    would_install: dict[str, str] = Field(default_factory=dict)
    replaced: list[Replacement] = Field(default_factory=list)
    error: str | None = None
    log: str | None = None

    def message(self) -> str:
        """One line for the step's outcome."""
        if self.ok:
            return "no protected package would change"
        if self.replaced:
            parts = [
                f"{r.name} {r.installed} -> {r.would_install or '<another version>'}" for r in self.replaced
            ]
            why = f" (pip: {self.error})" if self.error else ""
            return (
                f"refused: this step would replace the vendor build ({', '.join(parts)}){why}; "
                "pin a compatible version, or pass --allow-torch-change if you really mean it"
            )
        return f"dry run failed: {self.error}"


def _mentions(line: str, name: str) -> bool:
    """`torch` as a package name in a pip message, not as part of `sc-old-torch`."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", line, re.I) is not None


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def target_info(
    python: Path, names: Sequence[str], *, timeout: float, log_path: Path
) -> tuple[str, dict[str, str]]:
    """(Python version, installed versions of `names`) of the target interpreter; missing ones left out."""
    log_path.unlink(missing_ok=True)
    done = run_command([str(python), "-c", _VERSIONS, *names], timeout=timeout, log_path=log_path)
    text = (
        log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        if log_path.exists()
        else []
    )
    try:
        data = json.loads(text[-1]) if text and done.returncode == 0 else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise UsageError(
            f"cannot run the target Python {python}",
            where=str(log_path),
            fix="check --python points to a python",
        )
    return str(data["python"]), {k: v for k, v in data["versions"].items() if v}


def write_constraints(path: Path, pins: dict[str, str]) -> Path:
    """A pip constraints file pinning each protected package at its installed version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# written by stackcert install: keep the vendor build",
        *(f"{n}=={v}" for n, v in sorted(pins.items())),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_pip_step(
    python: Path,
    pip_args: Sequence[str],
    protected: dict[str, str],
    *,
    timeout: float,
    log_dir: Path,
    name: str = "dryrun",
    env: Mapping[str, str] | None = None,
) -> ProtectionCheck:
    """Dry-run `pip install <pip_args>` and refuse it if any protected package would change.

    `pip_args` are what follows `pip install` (requirements and index options) *without* the
    constraints file, so pip shows the replacement instead of just failing to resolve.
    """
    report = log_dir / f"{name}-report.json"
    log = log_dir / f"{name}.log"
    report.unlink(missing_ok=True)
    argv = [
        str(python),
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--disable-pip-version-check",
        "--no-input",
        "--report",
        str(report),
        *pip_args,
    ]
    done = run_command(argv, timeout=timeout, log_path=log, env=dict(env) if env is not None else None)
    pins = {_canon(k): (k, v) for k, v in protected.items()}
    if done.timed_out:
        return ProtectionCheck(ok=False, error=f"pip dry run took longer than {timeout:g}s", log=str(log))
    if done.returncode != 0 or not report.exists():
        text = log.read_text(encoding="utf-8", errors="replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        errors = [
            ln for ln in lines if ln.startswith("ERROR") or "depends on" in ln or "conflict" in ln.lower()
        ]
        first = errors[0] if errors else (lines or ["no output"])[-1]
        hit = [(n, v) for n, v in pins.values() if any(_mentions(ln, n) for ln in errors)]
        why = next((ln for ln in errors if hit and _mentions(ln, hit[0][0])), None)
        error = f"{first} ({why})" if why and why != first else first
        replaced = [Replacement(name=n, installed=v) for n, v in hit]
        return ProtectionCheck(ok=False, replaced=replaced, error=error[:400], log=str(log))
    data = json.loads(report.read_text(encoding="utf-8"))
    would = {
        item["metadata"]["name"]: item["metadata"]["version"]
        for item in data.get("install", [])
        if "metadata" in item
    }
    replaced = []
    for dist, version in would.items():
        pin = pins.get(_canon(dist))
        if pin and pin[1] != version:
            replaced.append(Replacement(name=pin[0], installed=pin[1], would_install=version))
    return ProtectionCheck(ok=not replaced, would_install=would, replaced=replaced, log=str(log))
