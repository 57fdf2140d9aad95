"""One campaign run inside a Ray worker: the ordinary pipeline (preflight, new_run or resume_run,
execute) in the run's own folder, under the run's time limit; the summary the campaign records.

The time limit raises KeyboardInterrupt in the task's thread, which the pipeline handles like Ctrl-C
(engines stopped, the running step back to pending, resumable); a run that still has not stopped a
minute later ends its worker process (each worker runs one task, so nothing of it lingers).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from stackcert.errors import StackcertError
from stackcert.jsonio import read_json
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.preflight import preflight
from stackcert.pipeline.runner import Interrupted
from stackcert.pipeline.session import execute, new_run, restore_secrets, resume_run
from stackcert.runmodel.config import RunConfig
from stackcert.runmodel.layout import STATE_FILE
from stackcert.status import Status

HARD_STOP_GRACE_S = 60.0
TRACEBACK_FILE = "campaign-task.traceback.txt"


def run_finished(run_dir: Path) -> bool:
    """The run wrote its report: every step done and report.json present."""
    if not (run_dir / "report.json").is_file() or not (run_dir / STATE_FILE).is_file():
        return False
    try:
        data = read_json(run_dir / STATE_FILE)
    except (OSError, ValueError):
        return False
    steps = data.get("steps", {}) if isinstance(data, dict) else {}
    return bool(steps) and all(
        isinstance(s, dict) and Status(s.get("status", "pending")).done for s in steps.values()
    )


def summary(run_dir: Path) -> dict[str, Any]:
    """What the campaign keeps of a finished run: verdict, perf ratio, exit code, report paths."""
    report = read_json(run_dir / "report.json")
    compare = report.get("compare") or {}
    verdict = report.get("verdict") or {}
    html = run_dir / "report.html"
    return {
        "status": "done",
        "verdict": report.get("status"),
        "perf_ratio": compare.get("perf_ratio"),
        "exit_code": verdict.get("exit_code"),
        "report": str(run_dir / "report.json"),
        "report_html": str(html) if html.is_file() else None,
        "error": None,
    }


def locate(run_dir: Path, what: str) -> str:
    """An error located in the run: the step that was running, crashed or failed, and its reason."""
    if not (run_dir / STATE_FILE).is_file():
        return what
    try:
        data = read_json(run_dir / STATE_FILE)
        steps = list(data.get("steps", {}).values())
    except (OSError, ValueError, AttributeError):
        return what
    order = ("running", "crash", "timeout", "pending")
    for wanted in order:
        for step in steps:
            if isinstance(step, dict) and step.get("status") == wanted:
                reason = step.get("reason") or ""
                tail = f" — {reason}" if reason and wanted != "pending" else ""
                return f"{what} (at step {step.get('id')}{tail}; ledger {run_dir / STATE_FILE})"
    return what


def _open(config_json: dict[str, Any], run_dir: Path) -> tuple[RunConfig, Ledger]:
    """Resume the run in run_dir if it was started, else start it there."""
    if (run_dir / STATE_FILE).is_file():
        config, ledger = resume_run(run_dir)
        preflight(config)
        return config, ledger
    config = restore_secrets(RunConfig.model_validate(config_json), where="plan.json")
    preflight(config)  # bad input of this run: one line in its record, before an engine starts
    return new_run(config, run_dir)


class Watchdog:
    """Past timeout_s: KeyboardInterrupt in the task's thread; past the grace too: end the process."""

    def __init__(self, timeout_s: float, grace_s: float = HARD_STOP_GRACE_S) -> None:
        self.thread_id = threading.get_ident()
        self.fired = threading.Event()
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._stopped = False
        self._timers = [threading.Timer(timeout_s, self._expire)]
        self._timers[0].daemon = True
        self._timers[0].start()

    def _expire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.fired.set()
            exc = ctypes.py_object(KeyboardInterrupt)
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), exc)
            killer = threading.Timer(self.grace_s, lambda: os._exit(124))
            killer.daemon = True
            killer.start()
            self._timers.append(killer)

    def stop(self) -> None:
        """The task ended: no interrupt and no hard stop any more."""
        with self._lock:
            self._stopped = True
            for timer in self._timers:
                timer.cancel()


def run_entry(config_json: dict[str, Any], run_dir_text: str, timeout_s: float) -> dict[str, Any]:
    """Run (or resume) one campaign run; its summary and its time in the task (not queued)."""
    run_dir = Path(run_dir_text)
    if run_finished(run_dir):
        return summary(run_dir)
    t0 = time.monotonic()
    result = _run(config_json, run_dir, timeout_s)
    return {**result, "duration_s": round(time.monotonic() - t0, 1)}


def _run(config_json: dict[str, Any], run_dir: Path, timeout_s: float) -> dict[str, Any]:
    """The pipeline under the watchdog; never raises for a run that fails."""
    watchdog = Watchdog(timeout_s)
    try:
        try:
            config, ledger = _open(config_json, run_dir)
            execute(config, ledger)
        finally:
            watchdog.stop()
    except (Interrupted, KeyboardInterrupt):
        fired = watchdog.fired.is_set()
        status = "timeout" if fired else "error"
        what = f"ran past its {timeout_s:g}s limit" if fired else "interrupted"
        return {"status": status, "error": locate(run_dir, what)}
    except StackcertError as exc:
        return {"status": "error", "error": locate(run_dir, exc.one_line())}
    except Exception as exc:  # a crash: located, its traceback kept in the run folder
        where = run_dir / "logs" / TRACEBACK_FILE if run_dir.is_dir() else None
        if where is not None:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        what = f"crashed: {type(exc).__name__}: {exc}" + (f" (traceback: {where})" if where else "")
        return {"status": "error", "error": locate(run_dir, what)}
    if run_finished(run_dir):
        return summary(run_dir)
    return {"status": "error", "error": locate(run_dir, "the run ended without a report")}
