"""The parent's side of operator selection inside vLLM's engine processes.

Two mechanisms, chosen by ``OperatorSelection.via``:

- ``stackcert`` (default): stackcert's own vLLM general plugin (:mod:`stackcert.engines.vllm_plugin`)
  applies the selection in every model-running process and records what the library registered
  there. :func:`selection_env` sets its variables; when the stack names ``VLLM_PLUGINS`` (an
  allow-list), ``stackcert_ops`` is added to it, or vLLM would not load the plugin.
- ``vllm_fl``: vllm-plugin-FL applies FlagGems itself. The selection becomes the plugin's own
  switches (``VLLM_FL_FLAGOS_WHITELIST`` / ``VLLM_FL_FLAGOS_BLACKLIST``); the evidence is the
  operator list FlagGems writes in the engine process (``FLAGGEMS_ENABLE_OPLIST_PATH``, pointed
  into the run folder). That file lists the operators that *ran*, so only exclusions can be checked.

:func:`read_back` turns the records into :class:`EngineOps` — requested vs. effective — written to
``effective_ops.json``; ``problems`` is non-empty when the engine did not run what was asked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from stackcert.config import OperatorSelection, StackSpec
from stackcert.engines.vllm_plugin import ENV_DIR, ENV_SELECTION, PLUGIN_NAME
from stackcert.jsonio import envelope, write_json_atomic

OPS_DIR = "operators"
OPLIST_FILE = "flaggems_enable_oplist.txt"
# vllm-plugin-FL switches that carry an operator selection (set from OperatorSelection, never by hand).
FL_WHITELIST = "VLLM_FL_FLAGOS_WHITELIST"
FL_BLACKLIST = "VLLM_FL_FLAGOS_BLACKLIST"
FL_OPLIST = "FLAGGEMS_ENABLE_OPLIST_PATH"


class ProcessOps(BaseModel):
    """What one engine process registered."""

    pid: int
    process: str
    ok: bool
    effective: list[str] = Field(default_factory=list)
    error: str | None = None


class EngineOps(BaseModel):
    """Requested vs. effective operator set of one engine start."""

    via: str
    library: str
    requested: OperatorSelection
    processes: list[ProcessOps] = Field(default_factory=list)
    effective: list[str] | None = Field(None, description="the set the model-running process registered")
    problems: list[str] = Field(default_factory=list, description="why the engine did not run the request")

    @property
    def matches(self) -> bool:
        """True when the engine process really ran the requested selection."""
        return not self.problems


def ops_dir(run_dir: Path) -> Path:
    """Where the engine processes of a start record their operator sets."""
    return run_dir / OPS_DIR


def selection_env(stack: StackSpec, env: dict[str, str], run_dir: Path) -> dict[str, str]:
    """The child environment with the stack's operator selection wired in (a new dict)."""
    out = dict(env)
    for key in (ENV_SELECTION, ENV_DIR):
        out.pop(key, None)
    sel = stack.operators
    if sel is None:
        return out
    if sel.via == "vllm_fl":
        out.pop(FL_WHITELIST, None)
        out.pop(FL_BLACKLIST, None)
        if sel.include is not None:
            out[FL_WHITELIST] = ",".join(n for n in sel.include if n not in set(sel.exclude))
        elif sel.exclude:
            out[FL_BLACKLIST] = ",".join(sel.exclude)
        out[FL_OPLIST] = str(run_dir / OPLIST_FILE)
        return out
    out[ENV_SELECTION] = sel.model_dump_json()
    out[ENV_DIR] = str(ops_dir(run_dir))
    allowed = out.get("VLLM_PLUGINS")
    if allowed is not None:
        names = [n for n in allowed.split(",") if n.strip()]
        if PLUGIN_NAME not in names:
            out["VLLM_PLUGINS"] = ",".join([*names, PLUGIN_NAME])
    return out


def clear(run_dir: Path) -> None:
    """Remove an earlier start's records, so the read-back belongs to this start."""
    folder = ops_dir(run_dir)
    if folder.is_dir():
        for path in folder.glob("engine-ops-*.json"):
            path.unlink(missing_ok=True)
    (run_dir / OPLIST_FILE).unlink(missing_ok=True)


def _records(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(ops_dir(run_dir).glob("engine-ops-*.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def _model_processes(procs: list[ProcessOps]) -> list[ProcessOps]:
    """The processes that run the model: workers if any, else EngineCore, else the main process."""
    for prefix in (("VllmWorker", "Worker"), ("EngineCore",)):
        hit = [p for p in procs if p.process.startswith(prefix)]
        if hit:
            return hit
    return procs


_GEMS_OP = re.compile(r"flag_gems\.(?:ops|fused|experimental_ops|runtime\.backend\.[\w.]+?\.ops)\.(\w+)")


def parse_oplist(text: str) -> list[str]:
    """Operator names in FlagGems' record file: module paths ``flag_gems.ops.NAME`` or one name a line."""
    names: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        found = _GEMS_OP.findall(line)
        if found:
            names.update(found)
        elif re.fullmatch(r"[A-Za-z_][\w.]*", line):
            names.add(line)
    return sorted(names)


def _check(sel: OperatorSelection, effective: list[str], *, ran_only: bool) -> list[str]:
    problems = []
    eff = set(effective)
    leaked = sorted(eff & set(sel.exclude))
    if leaked:
        problems.append(f"excluded operators were registered in the engine process: {', '.join(leaked)}")
    if sel.include is not None and not ran_only:
        extra = sorted(eff - set(sel.include))
        if extra:
            problems.append(f"operators outside the include list were registered: {', '.join(extra[:20])}")
    return problems


def read_back(stack: StackSpec, run_dir: Path, *, write: bool = True) -> EngineOps | None:
    """Compare the engine processes' records with the stack's request; None without a selection."""
    sel = stack.operators
    if sel is None:
        return None
    result = EngineOps(via=sel.via, library=sel.library, requested=sel)
    if sel.via == "vllm_fl":
        path = run_dir / OPLIST_FILE
        if path.exists():
            result.effective = parse_oplist(path.read_text(encoding="utf-8", errors="replace"))
            result.problems = _check(sel, result.effective, ran_only=True)
        else:
            result.problems = [f"vllm-plugin-FL wrote no FlagGems operator list ({path})"]
    else:
        procs = [
            ProcessOps(
                pid=int(r.get("pid", 0)),
                process=str(r.get("process", "")),
                ok=bool(r.get("ok")),
                effective=list(r.get("effective") or []),
                error=r.get("error"),
            )
            for r in _records(run_dir)
        ]
        result.processes = procs
        model_procs = _model_processes(procs)
        if not procs:
            result.problems = [
                "no engine process applied the operator selection (the stackcert_ops vLLM plugin did "
                "not run: is stackcert installed in the engine's Python, and VLLM_PLUGINS allowing it?)"
            ]
        else:
            failed = [p for p in model_procs if not p.ok]
            if failed:
                result.problems = [f"{p.process} (pid {p.pid}) could not apply it: {p.error}" for p in failed]
            sets = {tuple(p.effective) for p in model_procs if p.ok}
            if len(sets) > 1:
                result.problems.append("the model-running processes registered different operator sets")
            if sets:
                result.effective = list(sorted(sets)[0])
                result.problems += _check(sel, result.effective, ran_only=False)
    if write:
        write_json_atomic(
            run_dir / "effective_ops.json", envelope("operators", result.model_dump(mode="json"))
        )
    return result
