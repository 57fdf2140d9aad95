"""Schemas of the feature matrix (`features.json`) and of the weight gates: options, evidence, results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from stackcert.evidence.findings import Finding
from stackcert.status import Status

FEATURES_SCHEMA = 1  # bump on an incompatible change of FeatureMatrix / WeightGates
FEATURES_KIND = "features"
GATES_KIND = "weight-gates"

FeatureId = Literal[
    "graph_mode",
    "prefix_caching",
    "chunked_prefill",
    "expert_parallel",
    "speculative_decoding",
    "multimodal",
    "long_context",
    "structured_output",
    "capacity",
]
FEATURE_IDS: tuple[FeatureId, ...] = (
    "graph_mode",
    "prefix_caching",
    "chunked_prefill",
    "expert_parallel",
    "speculative_decoding",
    "multimodal",
    "long_context",
    "structured_output",
    "capacity",
)
FEATURE_TITLES: dict[str, str] = {
    "graph_mode": "Graph mode (compiled graph / CUDA graphs) vs eager",
    "prefix_caching": "Prefix caching",
    "chunked_prefill": "Chunked prefill",
    "expert_parallel": "Expert parallelism (MoE)",
    "speculative_decoding": "MTP / speculative decoding",
    "multimodal": "Multimodal (text + image)",
    "long_context": "Long context at max_model_len",
    "structured_output": "Structured output (JSON schema)",
    "capacity": "Capacity baseline (max_model_len x max_num_seqs, concurrency)",
}

# The four outcomes (features.json's `outcome`, what the deliverables read):
# supported; unsupported (not shown to work on this stack: see `basis`); not-applicable (the model has
# no such part, config.json); checkpoint-missing (the model could, the checkpoint lacks the weights).
Outcome = Literal["supported", "unsupported", "not-applicable", "checkpoint-missing"]
OUTCOMES: tuple[Outcome, ...] = ("supported", "unsupported", "not-applicable", "checkpoint-missing")
# How it was decided: request (a request proved or refuted it), config (configuration alone: config.json
# or the engine config), disabled (turned off in this stack's configuration), error (no decision: no
# answer in time, the time budget spent, nothing to decide from) — the last two with outcome unsupported.
Basis = Literal["request", "config", "disabled", "error"]
BASES: tuple[Basis, ...] = ("request", "config", "disabled", "error")


class FeatureOptions(BaseModel):
    """How much the probes may cost: one time budget for the whole matrix, one limit per request."""

    budget_s: float = Field(
        90.0, gt=0, description="the whole matrix; probes left when it is spent end in error"
    )
    request_timeout_s: float = Field(60.0, gt=0, description="one HTTP request")
    prefix_tokens: int = Field(
        384, ge=16, description="length of the shared prefix of the prefix-cache probe"
    )
    long_context_fill: float = Field(
        0.9, gt=0, le=1.0, description="the long-context prompt fills this share of max_model_len"
    )
    structured_max_tokens: int = Field(48, ge=8, description="max_tokens of the structured-output request")
    capacity_budget_s: float = Field(20.0, ge=0, description="time for the ramp (0: first rung only)")
    capacity_start: int = Field(1, ge=1, description="first concurrency of the ramp")
    capacity_max: int = Field(64, ge=1, description="highest concurrency tried")
    capacity_max_tokens: int = Field(8, ge=1, description="max_tokens of each ramp request")
    target_max_model_len: int = Field(131072, ge=1, description="the seed's default capacity target")
    target_max_num_seqs: int = Field(16, ge=1, description="the seed's default capacity target")
    features: list[FeatureId] = Field(default_factory=lambda: list(FEATURE_IDS), description="which to probe")


class RequestEvidence(BaseModel):
    """One request a probe sent and what came back (status and a short excerpt of the body)."""

    method: str
    path: str
    body: dict[str, Any] | None = Field(None, description="the request body, long prompts shortened")
    status: int | None = Field(None, description="HTTP status; None when no answer came")
    excerpt: str = Field("", description="the start of the answer body (or of the generated text)")
    error: str | None = Field(None, description="why the answer is no answer (transport, timeout, malformed)")
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Status 200 and nothing wrong with the answer."""
        return self.status == 200 and self.error is None


class ConcurrencyStep(BaseModel):
    """One rung of the capacity ramp: `concurrency` requests in flight at once."""

    concurrency: int
    ok: int
    errors: int
    duration_s: float
    first_error: str | None = None


class CapacityBaseline(BaseModel):
    """The largest max_model_len x max_num_seqs the running server has, against the target, then the ramp."""

    target_max_model_len: int
    target_max_num_seqs: int
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    kv_cache_tokens: int | None = Field(None, description="KV cache size in tokens (server log)")
    max_concurrency_at_max_len: float | None = Field(None, description="KV cache tokens / max_model_len")
    scaled_down: bool = False
    reasons: list[str] = Field(default_factory=list, description="why below the target (one per dimension)")
    ramp: list[ConcurrencyStep] = Field(default_factory=list)
    max_ok_concurrency: int = 0
    ramp_stopped_by: Literal["errors", "budget", "limit", "skipped"] = "skipped"


class FeatureResult(BaseModel):
    """The outcome of one feature with its evidence: requests, log lines, the config field that decided."""

    feature: FeatureId
    outcome: Outcome
    basis: Basis = Field("request", description="how the outcome was reached")
    evidence: str = Field("", description="one line: what decided (details in the fields below)")
    mode: str | None = Field(None, description="what the server runs, e.g. 'eager' or 'compiled (inductor)'")
    decided_by: str | None = Field(None, description="the config field (and its value) that decided")
    requests: list[RequestEvidence] = Field(default_factory=list)
    log_lines: list[str] = Field(default_factory=list, description="server log lines read as evidence")
    metrics: dict[str, float] = Field(default_factory=dict, description="counters read as evidence")
    capacity: CapacityBaseline | None = None
    duration_s: float = 0.0


class FeatureMatrix(BaseModel):
    """Every probed feature of one running server (`<run>/features.json`)."""

    features_schema: int = FEATURES_SCHEMA
    stack: str
    engine: str
    served_model: str
    base_url: str
    model_path: str | None = None
    features: list[FeatureResult] = Field(default_factory=list, description="one result per probed feature")
    budget_s: float = 0.0
    duration_s: float = 0.0

    def result(self, feature: FeatureId) -> FeatureResult | None:
        """The result of `feature`, if it was probed."""
        return next((r for r in self.features if r.feature == feature), None)

    def outcomes(self) -> dict[str, Outcome]:
        """feature id -> outcome, in probe order."""
        return {r.feature: r.outcome for r in self.features}

    def decisions(self) -> dict[str, str]:
        """feature id -> outcome, or the basis where it qualifies an unsupported one (disabled, error)."""
        return {r.feature: r.basis if r.basis in ("disabled", "error") else r.outcome for r in self.features}


# -- weight gates -------------------------------------------------------------------------------------
GateName = Literal["dummy", "real"]


class GateCheck(BaseModel):
    """Request-level serving of one server: the model listed, one completion with HTTP 200 and text."""

    status: Status = Status.PENDING
    models_listed: bool = False
    completion_ok: bool = False
    output_excerpt: str = ""
    requests: list[RequestEvidence] = Field(default_factory=list)
    detail: str = ""
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Both checks answered as they must."""
        return self.status is Status.PASS


class WeightGate(BaseModel):
    """One stage: which weights, how the engine was started (argv), the serving check, start findings."""

    stage: GateName
    stack: str
    load_format: str = Field(description="'dummy' (random weights) or the stack's own ('auto')")
    status: Status = Status.PENDING
    started: bool = False
    startup_s: float = 0.0
    argv: list[str] = Field(default_factory=list)
    log_path: str | None = None
    check: GateCheck | None = None
    findings: list[Finding] = Field(default_factory=list)
    duration_s: float = 0.0


class DummyRealRow(BaseModel):
    """One line of the dummy-vs-real matrix: what each stage shows, and what it cannot."""

    aspect: str
    dummy: str
    real: str


class WeightGates(BaseModel):
    """Stage A (dummy weights) and stage B (real weights) of one stack, the matrix and the caveats."""

    features_schema: int = FEATURES_SCHEMA
    stack: str
    stage_a: WeightGate | None = None
    stage_b: WeightGate | None = None
    matrix: list[DummyRealRow] = Field(default_factory=list)
    non_equivalence: list[str] = Field(
        default_factory=list, description="why no numeric A/B on dummy weights"
    )

    @property
    def pass_allowed(self) -> bool:
        """A PASS needs stage B (real weights) passed; stage A alone never allows one."""
        return self.stage_b is not None and self.stage_b.status is Status.PASS
