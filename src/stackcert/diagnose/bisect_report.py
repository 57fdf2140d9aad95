"""BisectReport: what an operator bisection did and found — the content of bisect.json."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from stackcert.diagnose.bisect import BisectResult
from stackcert.evidence.findings import Finding


class ProbeStart(BaseModel):
    """One engine start of a vLLM bisection: its folder, how many operators it excluded, what it did."""

    dir: str
    excluded: int
    startup_s: float | None = None
    category: str = ""
    seconds: float = 0.0


class BisectReport(BaseModel):
    """A bisection's search result plus how it ran (engine, tolerance, starts, timing) and its finding."""

    engine: Literal["transformers", "vllm"] = "transformers"
    reference: str
    candidate: str
    library: str
    model: str
    logprob_tol: float
    duration_s: float = 0.0
    result: BisectResult
    findings: list[Finding] = Field(default_factory=list)
    # transformers: one worker process answers every probe
    prompt: str | None = None
    max_new_tokens: int | None = None
    worker_starts: int | None = None
    # vLLM: every probe is an engine start
    active_count: int | None = None
    traceback_operator: str | None = None
    traceback_source: str | None = None
    engine_starts: int | None = None
    starts: list[ProbeStart] = Field(default_factory=list)
    timing: dict[str, float] = Field(default_factory=dict)
    reference_tokens: list[int] | list[list[int]] = Field(default_factory=list)

    @property
    def culprits(self) -> list[str]:
        """The operators the search named."""
        return self.result.culprits
