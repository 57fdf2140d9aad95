"""The verdict of a run, as recorded in report.json (decided by `stackcert.pipeline.verdict`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class Verdict(StrEnum):
    """PASS: both stacks pass every gate; PARTIAL: only the reference does; FAIL: neither serves."""

    PASS = "PASS"
    PARTIAL = "PARTIAL"
    FAIL = "FAIL"


Recommended = Literal["full", "base", "none"]


class VerdictResult(BaseModel):
    """The verdict, the stack it recommends, the exit code and why it is not PASS."""

    verdict: Verdict
    recommended: Recommended
    exit_code: int
    retest: bool = False
    reasons: list[str] = Field(default_factory=list, description="why it is not PASS; empty on PASS")
