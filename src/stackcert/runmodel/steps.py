"""The ledger's records: one per step, and one per engine start."""

from __future__ import annotations

from pydantic import BaseModel, Field

from stackcert.status import Status


class StepRecord(BaseModel):
    """One step of a run: its state, why, when, and the result file it wrote."""

    id: str
    title: str = ""
    status: Status = Status.PENDING
    reason: str = ""
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    result_file: str | None = Field(None, description="path relative to the run directory")
    attempts: int = 0


class EngineStart(BaseModel):
    """One engine start of a stack during the run, and whether it came up."""

    stack: str
    at: str
    ok: bool | None = None
    log_path: str | None = None
