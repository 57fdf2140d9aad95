"""report.json: the single source every renderer reads (Markdown card, HTML, console).

The top section (`status`, `pipeline`, `model`, `steps`, `errors`, `conclusion`) keeps the shape of
FlagRelease's final report so tools written for it can read ours; everything below it is the full
record of what each step produced, as the phase libraries' own typed models (`stackcert.runmodel`):
`stackcert report` reads report.json back into the same models.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from stackcert import SCHEMA_VERSION, __version__
from stackcert.bench.records import BenchResult
from stackcert.config import StackSpec
from stackcert.consistency.options import ConsistencyResult
from stackcert.diagnose.bisect_report import BisectReport
from stackcert.engines.base import ModelRef
from stackcert.env.probe import HostInfo
from stackcert.env.vendors import VendorRuntime
from stackcert.evidence.findings import Finding
from stackcert.features.models import FeatureMatrix, WeightGates
from stackcert.install.gate import GateResult
from stackcert.runmodel.config import RunConfig
from stackcert.runmodel.results import CompareResult
from stackcert.runmodel.steps import StepRecord
from stackcert.runmodel.verdict import Verdict, VerdictResult
from stackcert.smoke.models import SmokeResult
from stackcert.targets import TargetInfo

REPORT_SCHEMA = "stackcert.report/1"


class FlagStep(BaseModel):
    """One step of the FlagRelease-compatible summary."""

    status: str = Field(..., description="success | failed | skipped | pending")
    duration_seconds: float = 0.0
    detail: str = ""


class FlagSteps(BaseModel):
    """The FlagRelease summary's four steps."""

    install_stack: FlagStep
    env_verify: FlagStep
    model_verify: FlagStep
    perf_test: FlagStep


class ModelSummary(BaseModel):
    """The model the run certified, in the FlagRelease summary."""

    name: str
    path: str | None = None
    source: str = "demo"
    dtype: str = ""
    max_model_len: int | None = None


class StackReport(BaseModel):
    """One stack of the run: its spec, engine start, smoke test and benchmark."""

    name: str
    role: str = Field(..., description="reference | candidate")
    spec: StackSpec
    serve: StepRecord | None = None
    smoke: SmokeResult | None = None
    bench: BenchResult | None = None
    serve_command: list[str] = Field(default_factory=list, description="how to serve this stack by hand")
    serve_env: dict[str, str] = Field(default_factory=dict)


class EvalRow(BaseModel):
    """One line of the side-by-side evaluation table."""

    group: str = Field(..., description="consistency | accuracy | performance | smoke")
    metric: str
    reference: str = "–"
    candidate: str = "–"
    note: str = ""


class ServeAdvice(BaseModel):
    """How to serve the recommended stack: the exact command and environment."""

    stack: str | None = None
    command: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    unset_env: list[str] = Field(default_factory=list)
    served_name: str = ""
    port: int = 8000


class Series(BaseModel):
    """Plot data: latency per stack, throughput per concurrency, KL per token or text."""

    latency: dict[str, list[float]] = Field(default_factory=dict, description="stack -> latencies (ms)")
    throughput: dict[str, list[list[float]]] = Field(
        default_factory=dict, description="stack -> [[concurrency, output tok/s]]"
    )
    kl: list[list[float]] = Field(default_factory=list, description="[[position, KL]]")
    kl_axis: str = "token"


class Report(BaseModel):
    """report.json: the FlagRelease-compatible summary, then every step's typed result."""

    # --- FlagRelease-compatible top section ---
    status: Verdict = Field(..., description="PASS | PARTIAL | FAIL")
    pipeline: str = "stackcert run"
    model: ModelSummary
    steps: FlagSteps
    errors: list[str] = Field(default_factory=list)
    conclusion: str = ""
    # --- stackcert detail ---
    schema_version: str = SCHEMA_VERSION
    report_schema: str = REPORT_SCHEMA
    kind: str = "report"
    stackcert_version: str = __version__
    run_id: str
    run_dir: str
    created: str
    verdict: VerdictResult
    reference: str
    candidate: str
    engine_starts: dict[str, int] = Field(default_factory=dict)
    timeline: list[StepRecord] = Field(default_factory=list)
    target: TargetInfo | None = Field(None, description="where the run's commands executed")
    env: HostInfo | None = None
    vendor_runtime: VendorRuntime | None = Field(
        None, description="the accelerator vendor's env and engine arguments applied to the stacks"
    )
    install: GateResult | None = None
    model_ref: ModelRef | None = None
    stacks: dict[str, StackReport] = Field(default_factory=dict)
    features: FeatureMatrix | None = Field(None, description="the candidate's serving features")
    weights: WeightGates | None = Field(None, description="weight gates A (dummy) and B (real)")
    consistency: ConsistencyResult | None = None
    compare: CompareResult | None = None
    bisect: BisectReport | None = None
    findings: list[Finding] = Field(default_factory=list)
    serve: ServeAdvice = Field(default_factory=ServeAdvice)
    evaluation: list[EvalRow] = Field(default_factory=list)
    series: Series = Field(default_factory=Series)
    config: RunConfig | None = None
