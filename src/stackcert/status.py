"""The states a step, a check or a stack run can end in."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    CRASH = "crash"

    @property
    def done(self) -> bool:
        return self not in (Status.PENDING, Status.RUNNING)

    @property
    def bad(self) -> bool:
        return self in (Status.FAIL, Status.TIMEOUT, Status.CRASH)
