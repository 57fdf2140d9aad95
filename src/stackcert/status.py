"""The states a step, a check or a stack run can end in."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a step, a check or a stack run stands: still pending or running, or ended in one of five ways."""

    PENDING = "pending"
    RUNNING = "running"
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    CRASH = "crash"

    @property
    def done(self) -> bool:
        """Whether the state is final (neither pending nor running)."""
        return self not in (Status.PENDING, Status.RUNNING)

    @property
    def bad(self) -> bool:
        """Whether the state is a failure: fail, timeout or crash (skipped is not bad)."""
        return self in (Status.FAIL, Status.TIMEOUT, Status.CRASH)
