"""Schemas of the smoke step: options, built-in prompts, check results, the per-stack result."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stackcert.evidence.findings import Finding
from stackcert.status import Status

# Worst first: the status of a group of checks is the worst status among them.
_SEVERITY = [Status.CRASH, Status.TIMEOUT, Status.FAIL, Status.PASS, Status.SKIPPED]


class SmokePrompt(BaseModel):
    """One built-in or user smoke prompt: its text, an optional expected substring, whether also chat."""

    model_config = ConfigDict(extra="forbid")

    name: str
    prompt: str
    expect: str | None = Field(None, description="a substring the greedy output must contain (optional)")
    chat: bool = Field(False, description="also sent as a chat message when the model has a template")


BUILTIN_PROMPTS: list[SmokePrompt] = [
    SmokePrompt(name="arithmetic", prompt="Question: What is 12+7?\nAnswer:", expect="19"),
    SmokePrompt(name="capital", prompt="The capital of France is", chat=True),
    SmokePrompt(name="story", prompt="Once upon a time, in a small village,"),
]


class QualityThresholds(BaseModel):
    """When generated text counts as degenerate (stuck in a tiny loop), not merely repetitive."""

    model_config = ConfigDict(extra="forbid")

    max_period_chars: int = Field(8, description="a loop unit at most this long ...")
    min_repeats: int = Field(4, description="... repeated at least this often ...")
    min_loop_fraction: float = Field(0.5, description="... covering at least this share of the text")
    min_len_for_ratio: int = Field(24, description="texts shorter than this skip the distinct-char test")
    min_distinct_char_ratio: float = Field(
        0.05, description="distinct characters / length below this is degenerate"
    )


class SmokeOptions(BaseModel):
    """What the smoke step runs: which phases, the prompts, token count, timeouts, concurrency, quality."""

    model_config = ConfigDict(extra="forbid")

    offline: bool = Field(True, description="run Phase A (offline generation)")
    serve: bool = Field(True, description="run Phase B (served API checks)")
    prompts: list[SmokePrompt] = Field(default_factory=lambda: list(BUILTIN_PROMPTS), min_length=1)
    max_tokens: int = Field(16, ge=1, le=100_000)
    request_timeout_s: float = Field(90.0, gt=0)
    offline_timeout_s: float = Field(600.0, gt=0)
    start_timeout_s: float = Field(900.0, gt=0)
    concurrency: int = Field(4, ge=1, le=4096)
    quality: QualityThresholds = Field(default_factory=QualityThresholds)


class CheckResult(BaseModel):
    """One smoke check's outcome: status, time, a line of detail and the finding when it failed."""

    name: str
    status: Status
    duration_s: float = 0.0
    detail: str = ""
    finding: Finding | None = None


class PhaseResult(BaseModel):
    """One smoke phase (offline or serve): its status, checks, time and a sample of the output."""

    status: Status = Status.SKIPPED
    reason: str = ""
    duration_s: float = 0.0
    output_sample: str = Field("", description="greedy text of the first prompt")
    checks: list[CheckResult] = Field(default_factory=list)

    def finish(self) -> PhaseResult:
        """Status from the checks: the worst one; all skipped (or none) stays skipped."""
        self.status = worst([c.status for c in self.checks])
        return self


class SmokeResult(BaseModel):
    """A stack's smoke run: status, both phases, findings, the operators in effect and the stack's env."""

    status: Status
    stack: str
    engine: str
    model: str = ""
    stack_components: list[str] = Field(default_factory=list)
    stack_env: dict[str, str] = Field(default_factory=dict)
    stack_unset_env: list[str] = Field(default_factory=list)
    phase_a_offline: PhaseResult = Field(default_factory=PhaseResult)
    phase_b_serve: PhaseResult = Field(default_factory=PhaseResult)
    output_sample: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    effective_ops: list[str] | None = Field(None, description="operators the engine reported as replaced")
    log_path: str | None = None

    def checks(self) -> list[CheckResult]:
        """Every check of both phases, offline first."""
        return [*self.phase_a_offline.checks, *self.phase_b_serve.checks]


def worst(statuses: list[Status]) -> Status:
    """The worst status; a group with no pass and nothing bad is skipped (startup alone never passes)."""
    for status in _SEVERITY:
        if status in statuses:
            return status
    return Status.SKIPPED


def overall(phases: list[PhaseResult]) -> Status:
    """The worst status over the phases (all skipped stays skipped)."""
    return worst([p.status for p in phases])
