"""stackcert's vLLM general plugin: apply an operator selection inside vLLM's engine processes.

vLLM calls every ``vllm.general_plugins`` entry point in each process it creates (the API server,
the EngineCore process, worker processes) before the process does any work, with multiprocessing on
as users run it. stackcert registers :func:`register` under the name ``stackcert_ops``
(pyproject.toml). The parent passes the selection in the environment:

- ``STACKCERT_OPERATORS``: the :class:`~stackcert.config.OperatorSelection` as JSON (unset: the
  plugin does nothing);
- ``STACKCERT_OPERATORS_DIR``: where each applying process writes
  ``engine-ops-<pid>.json`` — the operator set the library itself says it registered in *that*
  process (``flag_gems.all_registered_ops()``, ``fault_ops.active()``), its process name, and the
  request. The parent compares it with the request (:mod:`stackcert.engines.engine_ops`).

Only processes that run the model apply the selection: ``EngineCore*`` (the uniprocess executor runs
the model there), ``VllmWorker-*`` / ``Worker*`` (the multiprocess executor), and the main process
when ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` puts the engine in it. The API server process does not.
A selection that cannot be applied raises, so the engine fails to start instead of silently running
native operators. This module imports nothing heavy at import time: vLLM loads it in every process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from pathlib import Path
from typing import Any

PLUGIN_NAME = "stackcert_ops"
ENV_SELECTION = "STACKCERT_OPERATORS"
ENV_DIR = "STACKCERT_OPERATORS_DIR"
ENGINE_PREFIXES = ("EngineCore", "VllmWorker", "Worker")

_applied = False


def process_name() -> str:
    """This process's multiprocessing name (vLLM names its children EngineCore*, VllmWorker-N)."""
    return multiprocessing.current_process().name


def runs_model(name: str | None = None, env: dict[str, str] | None = None) -> bool:
    """Whether a process of this name runs the model (and so must get the operator selection)."""
    name = process_name() if name is None else name
    env = dict(os.environ) if env is None else env
    if name.startswith(ENGINE_PREFIXES):
        return True
    in_process_engine = env.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1").strip() in ("0", "false", "False")
    return name == "MainProcess" and in_process_engine


def _write(folder: Path, payload: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"engine-ops-{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def register() -> None:
    """vLLM entry point: apply ``STACKCERT_OPERATORS`` in a model-running process and record it."""
    global _applied
    raw = os.environ.get(ENV_SELECTION)
    if not raw or _applied or not runs_model():
        return
    _applied = True
    from stackcert.config import OperatorSelection
    from stackcert.engines import operators

    selection = OperatorSelection.model_validate_json(raw)
    folder = Path(os.environ[ENV_DIR]) if os.environ.get(ENV_DIR) else None
    payload: dict[str, Any] = {
        "kind": "engine_ops",
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "process": process_name(),
        "library": selection.library,
        "requested": selection.model_dump(),
        "time": time.time(),
    }
    try:
        effective = operators.apply(selection)
    except Exception as exc:
        payload.update(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        if folder is not None:
            _write(folder, payload)
        raise
    payload.update(ok=True, effective=effective, effective_count=len(effective))
    if folder is not None:
        _write(folder, payload)
    print(
        f"[stackcert_ops] {selection.library}: {len(effective)} operators registered in "
        f"{process_name()} (pid {os.getpid()})",
        flush=True,
    )
