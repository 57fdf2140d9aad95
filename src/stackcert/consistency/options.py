"""Options and results of the consistency pipeline (pydantic, so they serialise into the run JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stackcert.consistency.logprobs import LogprobStats
from stackcert.consistency.stats import RuleSettings
from stackcert.consistency.tasks import TaskComparison
from stackcert.consistency.tokens import PromptComparison, TokenSettings, TokenSummary
from stackcert.consistency.tolerance import Check, Envelope, ToleranceSettings, combine_decisions
from stackcert.evidence.findings import Finding

Phase = Literal["tokens", "logprobs", "tasks"]
Overall = Literal["pass", "fail", "retest"]
ALL_PHASES: tuple[Phase, ...] = ("tokens", "logprobs", "tasks")


class ConsistencyOptions(BaseModel):
    """What the consistency check runs: phases, prompts, texts, tasks, sample sizes, tolerances."""

    model_config = ConfigDict(extra="forbid")

    phases: list[Phase] = Field(default_factory=lambda: list(ALL_PHASES))
    prompts_file: Path | None = Field(None, description="JSONL of {'prompt': ...}; None = the built-in set")
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    score_top_k: int = Field(10, ge=1, description="top-k log-probs per scored token (vLLM allows up to 20)")
    sharegpt_texts: int = Field(
        8, ge=0, description="ShareGPT conversations scored teacher-forced (0 = none)"
    )
    max_sharegpt_texts: int = Field(
        32, ge=0, description="sequential sampling: score more texts, up to this many, while inconclusive"
    )
    token_budget: int = Field(256, ge=1, description="each scored text is cut to this many tokens")
    tolerance: ToleranceSettings = Field(default_factory=ToleranceSettings)
    noise_floor: bool = Field(
        True, description="score the reference twice, same concurrency, other order: the batch noise"
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["number_sequence"], description="built-in names or JSONL"
    )
    task_limit: int | None = Field(
        100, ge=1, description="start with the first N items of each task (None = all)"
    )
    task_budget: int | None = Field(
        400,
        ge=1,
        description="sequential sampling: add items, up to this many, while inconclusive (None = all)",
    )
    task_max_tokens: int = Field(16, ge=1)
    lmeval_tasks: list[str] = Field(default_factory=list, description="lm-eval task names (bridge)")
    lmeval_include_path: Path | None = None
    lmeval_limit: int | None = Field(None, ge=1)
    rules: RuleSettings = Field(default_factory=RuleSettings)
    concurrency: int = Field(8, ge=1, description="requests in flight per server")
    timeout_s: float = Field(900.0, gt=0)


class TokenPhase(BaseModel):
    """The greedy-token phase: each prompt's comparison and their counts; it fails when any prompt fails."""

    status: Literal["pass", "fail"]
    summary: TokenSummary | None = None
    prompts: list[PromptComparison] = Field(default_factory=list)


class LogprobPhase(BaseModel):
    """The log-prob phase: differences against the reference's own noise floor and the tolerance checks."""

    status: Overall
    estimator: str = "top-k union + tail bucket (see docs/consistency.md)"
    top_k: int = 10
    texts: int = 0
    comparison: LogprobStats | None = None
    noise_floor: LogprobStats | None = None
    envelope: Envelope | None = None
    tolerance: ToleranceSettings | None = None
    rounds: int = Field(1, description="sampling rounds (more texts were scored while inconclusive)")
    checks: list[Check] = Field(default_factory=list)
    wall_s: float = 0.0
    tokens_per_s: float = 0.0


class TaskPhase(BaseModel):
    """The task phase: paired accuracy comparisons of every task, after the sampling rounds."""

    status: Overall
    rounds: int = 1
    tasks: list[TaskComparison] = Field(default_factory=list)


class ConsistencyResult(BaseModel):
    """Consistency of a candidate against a reference: overall status, each phase, findings, files."""

    status: Overall
    reference: str
    candidate: str
    tokens: TokenPhase | None = None
    logprobs: LogprobPhase | None = None
    tasks: TaskPhase | None = None
    findings: list[Finding] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)


def combine(statuses: Sequence[str]) -> Overall:
    """Worst of several phase statuses: fail > retest (inconclusive) > pass."""
    worst = combine_decisions(["inconclusive" if s == "retest" else s for s in statuses])  # type: ignore[misc]
    return "retest" if worst == "inconclusive" else worst
