"""The run ledger, `state.json`: one record per step, written atomically after every change.

A step is *done* once it reached pass, fail, skipped, timeout or crash; `--resume` skips done steps
and reads their results back from the JSON file the record names. A step left `running` by a killed
process is not done: it is reset to pending when the ledger is opened again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from stackcert import SCHEMA_VERSION, __version__
from stackcert.errors import UsageError
from stackcert.jsonio import read_json, write_json_atomic
from stackcert.runmodel.layout import STATE_FILE
from stackcert.runmodel.steps import EngineStart, StepRecord
from stackcert.status import Status


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class LedgerState(BaseModel):
    schema_version: str = SCHEMA_VERSION
    kind: str = "state"
    stackcert_version: str = __version__
    run_id: str
    created: str = Field(default_factory=_now)
    updated: str = Field(default_factory=_now)
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    engine_starts: list[EngineStart] = Field(default_factory=list)
    interrupted: bool = False


class Ledger:
    """The steps of one run directory and their states."""

    def __init__(self, run_dir: Path, state: LedgerState) -> None:
        self.run_dir = run_dir
        self.state = state
        self._t0: dict[str, float] = {}

    # --- opening -------------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, step_ids: list[tuple[str, str]]) -> Ledger:
        state = LedgerState(run_id=run_dir.name)
        for step_id, title in step_ids:
            state.steps[step_id] = StepRecord(id=step_id, title=title)
        ledger = cls(run_dir, state)
        ledger.save()
        return ledger

    @classmethod
    def open(cls, run_dir: Path) -> Ledger:
        path = run_dir / STATE_FILE
        if not path.exists():
            raise UsageError(
                f"no {STATE_FILE} in {run_dir}", where=str(run_dir), fix="give the folder of an earlier run"
            )
        fix = "start a new run; state.json is stackcert's own and cannot be repaired by hand"
        try:
            state = LedgerState.model_validate(read_json(path))
        except (OSError, ValueError) as exc:  # (pydantic's ValidationError is a ValueError)
            first = str(exc).splitlines()[0]
            raise UsageError(f"unreadable {STATE_FILE}: {first}", where=str(path), fix=fix) from None
        ledger = cls(run_dir, state)
        for record in state.steps.values():
            if record.status is Status.RUNNING:  # the process died under it
                record.status = Status.PENDING
                record.reason = "interrupted; will run again"
        damaged = next(
            (
                r.id
                for r in state.steps.values()
                if r.status.done and r.result_file and not ledger._readable(r.id, r.result_file)
            ),
            None,
        )
        if damaged is not None:  # a damaged result is never trusted (no stale PASS): it and every
            after = False  # later step (compare, report read it) run again
            for record in state.steps.values():
                after = after or record.id == damaged
                if after and record.status.done:
                    record.status = Status.PENDING
                    record.reason = f"{damaged}'s result file was damaged; will run again"
        state.interrupted = False
        ledger.save()
        return ledger

    def ensure_steps(self, step_ids: list[tuple[str, str]]) -> None:
        """Add steps a newer plan has (kept in order), never dropping recorded ones."""
        ordered: dict[str, StepRecord] = {}
        for step_id, title in step_ids:
            ordered[step_id] = self.state.steps.get(step_id) or StepRecord(id=step_id, title=title)
        for step_id, record in self.state.steps.items():
            ordered.setdefault(step_id, record)
        self.state.steps = ordered
        self.save()

    # --- queries -------------------------------------------------------------------------------
    def get(self, step_id: str) -> StepRecord:
        return self.state.steps[step_id]

    def status(self, step_id: str) -> Status:
        return self.state.steps[step_id].status

    def done(self, step_id: str) -> bool:
        return self.state.steps[step_id].status.done

    def _readable(self, step_id: str, result_file: str) -> bool:
        """A result file the runner wrote for this step: JSON with our envelope, this step's kind and
        this schema version. Valid JSON of another shape is damage too (never a stale PASS)."""
        path = self.run_dir / result_file
        try:
            data = read_json(path)
        except (OSError, ValueError):
            return False
        return (
            isinstance(data, dict)
            and data.get("schema_version") == SCHEMA_VERSION
            and data.get("kind") in (None, step_id)
        )

    def first_unfinished(self) -> str | None:
        return next((s.id for s in self.state.steps.values() if not s.status.done), None)

    def records(self) -> list[StepRecord]:
        return list(self.state.steps.values())

    # --- transitions ---------------------------------------------------------------------------
    def start(self, step_id: str) -> None:
        record = self.state.steps[step_id]
        if record.status.done:
            raise RuntimeError(f"step {step_id} is already done ({record.status})")
        record.status = Status.RUNNING
        record.reason = ""
        record.started = _now()
        record.finished = None
        record.duration_s = None
        record.attempts += 1
        self._t0[step_id] = time.monotonic()
        self.save()

    def finish(self, step_id: str, status: Status, reason: str = "", result_file: str | None = None) -> None:
        if not status.done:
            raise ValueError(f"finish needs a final status, not {status}")
        record = self.state.steps[step_id]
        record.status = status
        record.reason = reason
        record.finished = _now()
        if record.started is None:
            record.started = record.finished
        t0 = self._t0.pop(step_id, None)
        record.duration_s = round(time.monotonic() - t0, 3) if t0 is not None else 0.0
        if result_file is not None:
            record.result_file = result_file
        self.save()

    def skip(self, step_id: str, reason: str) -> None:
        self.finish(step_id, Status.SKIPPED, reason)

    def interrupt(self, step_id: str) -> None:
        """Ctrl-C: the running step goes back to pending so a resume runs it again."""
        record = self.state.steps[step_id]
        record.status = Status.PENDING
        record.reason = "interrupted; will run again on --resume"
        record.finished = None
        self._t0.pop(step_id, None)
        self.state.interrupted = True
        self.save()

    def engine_started(self, stack: str, log_path: str | None) -> EngineStart:
        start = EngineStart(stack=stack, at=_now(), log_path=log_path)
        self.state.engine_starts.append(start)
        self.save()
        return start

    def save(self) -> None:
        self.state.updated = _now()
        write_json_atomic(self.run_dir / STATE_FILE, self.state)
