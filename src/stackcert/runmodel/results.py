"""RunResults: every step's typed result, from the phase that computes it to the report that shows it.

Each field holds the phase library's own model (HostInfo, GateResult, SmokeResult, BenchResult,
ConsistencyResult, BisectReport …); the few results that belong to the run itself (serving,
comparison, isolation ladder) are defined here. A result file is the model's JSON inside the
runner's envelope; `load_result` reads one back into the same model.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from stackcert.bench.compare import BenchComparison
from stackcert.bench.records import BenchResult
from stackcert.consistency.options import ConsistencyResult, Overall
from stackcert.diagnose.bisect_report import BisectReport
from stackcert.diagnose.diff import DiffAnalysis
from stackcert.engines.base import ModelRef, ServerInfo
from stackcert.env.probe import HostInfo
from stackcert.evidence.findings import Finding
from stackcert.features.models import FeatureMatrix, WeightGate, WeightGates
from stackcert.install.gate import GateResult
from stackcert.jsonio import read_json
from stackcert.smoke.models import SmokeResult

# Keys the runner's envelope adds around a result (jsonio.envelope).
ENVELOPE_KEYS = ("schema_version", "kind", "stackcert_version", "started", "finished", "command")


class ResolvedModel(BaseModel):
    """The model step's result: the checkpoint both stacks serve."""

    model: ModelRef


class ServeError(BaseModel):
    """Why an engine did not start, as the engine error said it."""

    error: str
    what: str
    where: str | None = None
    fix: str | None = None
    exit_code: int = 1


class ServeResult(BaseModel):
    """A stack's engine start: where it serves, how it was started, or why it did not come up."""

    stack: str
    ok: bool
    base_url: str = ""
    served_model: str = ""
    log_path: str = ""
    info: ServerInfo | None = None
    error: ServeError | None = None
    findings: list[Finding] = Field(default_factory=list)


class CompareResult(BaseModel):
    """Reference vs candidate: the smoke A/B diff, the throughput comparison and the consistency status."""

    diff: DiffAnalysis | None = None
    perf: BenchComparison | None = None
    perf_ok: bool | None = None
    perf_ratio: float | None = Field(None, description="candidate/reference throughput, the gated number")
    consistency: Overall | None = None
    notes: list[str] = Field(default_factory=list)


class LevelTry(BaseModel):
    """One isolation-ladder level started and judged against the reference's answers."""

    level: str
    passed: bool = False
    category: str = ""
    reason: str = ""
    startup_s: float | None = None
    seconds: float = 0.0
    switch: dict[str, list[str | None]] = Field(default_factory=dict)


class LadderResult(BaseModel):
    """The isolation ladder's walk: the first failing level, the switch it flips and its component."""

    levels: list[str]
    walked: list[LevelTry] = Field(default_factory=list)
    failing_level: str
    passing_level: str
    switch: dict[str, list[str | None]] = Field(default_factory=dict)
    component: str | None = None
    operator_library: bool = False
    engine_starts: int = 0
    findings: list[Finding] = Field(default_factory=list)


class StepFindings(BaseModel):
    """The findings of a step that ended without a result (an engine error raised mid-step)."""

    findings: list[Finding]


class StackResults(BaseModel):
    """The per-stack results: its engine start, smoke test and benchmark."""

    serve: ServeResult | None = None
    smoke: SmokeResult | None = None
    bench: BenchResult | None = None


StepResult = (
    HostInfo
    | GateResult
    | ResolvedModel
    | ServeResult
    | SmokeResult
    | BenchResult
    | ConsistencyResult
    | CompareResult
    | LadderResult
    | BisectReport
    | WeightGate
    | FeatureMatrix
    | WeightGates
)

# Step id (role-less for per-stack steps) -> the model its result file holds.
STEP_MODELS: dict[str, type[BaseModel]] = {
    "env": HostInfo,
    "install": GateResult,
    "model": ResolvedModel,
    "serve": ServeResult,
    "smoke": SmokeResult,
    "bench": BenchResult,
    "consistency": ConsistencyResult,
    "compare": CompareResult,
    "ladder": LadderResult,
    "bisect": BisectReport,
    "dummy_weights": WeightGate,
    "features": FeatureMatrix,
    "weights": WeightGates,
}


class RunResults(BaseModel):
    """Every step's result of one run (None until the step produced one)."""

    env: HostInfo | None = None
    install: GateResult | None = None
    model: ResolvedModel | None = None
    dummy_weights: WeightGate | None = Field(
        None, description="weight gate stage A: the candidate on dummy weights"
    )
    reference: StackResults = Field(default_factory=StackResults)
    candidate: StackResults = Field(default_factory=StackResults)
    features: FeatureMatrix | None = None
    weights: WeightGates | None = None
    consistency: ConsistencyResult | None = None
    compare: CompareResult | None = None
    ladder: LadderResult | None = None
    bisect: BisectReport | None = None
    failures: dict[str, list[Finding]] = Field(
        default_factory=dict, description="step id -> findings of a step that ended without a result"
    )

    def stack(self, role: str) -> StackResults:
        """The results of the stack playing `role` (reference or candidate)."""
        return self.reference if role == "reference" else self.candidate

    def put(self, step_id: str, value: BaseModel | None) -> None:
        """Record a step's result under its step id (`candidate.smoke`, `consistency` …)."""
        if "." in step_id:
            role, kind = step_id.split(".")
            setattr(self.stack(role), kind, value)
        else:
            setattr(self, step_id, value)

    def get(self, step_id: str) -> BaseModel | None:
        """A step's result, or None."""
        if "." in step_id:
            role, kind = step_id.split(".")
            value: BaseModel | None = getattr(self.stack(role), kind)
            return value
        if step_id not in type(self).model_fields:
            return None
        found: BaseModel | None = getattr(self, step_id)
        return found

    def findings(self, step_id: str) -> list[Finding]:
        """The findings a step's result carries (none for results without findings)."""
        value = self.get(step_id)
        found = getattr(value, "findings", None) or []
        return [f for f in found if isinstance(f, Finding)] + self.failures.get(step_id, [])

    def consistency_status(self) -> Overall | None:
        """The candidate's consistency status (pass / fail / retest), None when it was not decided."""
        return self.consistency.status if self.consistency is not None else None


def model_for(step_id: str) -> type[BaseModel] | None:
    """The result model of a step id, None for steps that have none (report)."""
    return STEP_MODELS.get(step_id.split(".")[-1])


def load_result(path: Path, step_id: str) -> BaseModel | None:
    """A result file read back into its model; None when missing, damaged or of another shape."""
    cls = model_for(step_id)
    if cls is None or not path.is_file():
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    payload = {k: v for k, v in data.items() if k not in ENVELOPE_KEYS}
    for model in (cls, StepFindings):
        try:
            return model.model_validate(payload)
        except ValidationError:
            continue
    return None
