"""report.json: the single source every renderer reads (Markdown card, HTML, console).

The top section (`status`, `pipeline`, `model`, `steps`, `errors`, `conclusion`) keeps the shape of
FlagRelease's final report so tools written for it can read ours; everything below it is the full
record of what each step produced. Step payloads are kept as the JSON their library wrote (each
library versions its own schema), so the report never loses a field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from stackcert import SCHEMA_VERSION, __version__
from stackcert.evidence.findings import Finding
from stackcert.pipeline.ledger import StepRecord
from stackcert.pipeline.verdict import VerdictResult

REPORT_SCHEMA = "stackcert.report/1"


class FlagStep(BaseModel):
    """One step of the FlagRelease-compatible summary."""

    status: str = Field(..., description="success | failed | skipped | pending")
    duration_seconds: float = 0.0
    detail: str = ""


class FlagSteps(BaseModel):
    install_stack: FlagStep
    env_verify: FlagStep
    model_verify: FlagStep
    perf_test: FlagStep


class ModelSummary(BaseModel):
    name: str
    path: str | None = None
    source: str = "demo"
    dtype: str = ""
    max_model_len: int | None = None


class StackReport(BaseModel):
    name: str
    role: str = Field(..., description="reference | candidate")
    spec: dict[str, Any]
    serve: StepRecord | None = None
    smoke: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None
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


class Report(BaseModel):
    # --- FlagRelease-compatible top section ---
    status: str = Field(..., description="PASS | PARTIAL | FAIL")
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
    env: dict[str, Any] | None = None
    install: dict[str, Any] | None = None
    model_ref: dict[str, Any] | None = None
    stacks: dict[str, StackReport] = Field(default_factory=dict)
    consistency: dict[str, Any] | None = None
    compare: dict[str, Any] | None = None
    bisect: dict[str, Any] | None = None
    findings: list[Finding] = Field(default_factory=list)
    serve: ServeAdvice = Field(default_factory=ServeAdvice)
    evaluation: list[EvalRow] = Field(default_factory=list)
    series: dict[str, Any] = Field(
        default_factory=dict,
        description="plot data: latency {stack: [ms]}, throughput {stack: [[concurrency, tok/s]]}, "
        "kl [[token position, KL]]",
    )
    config: dict[str, Any] = Field(default_factory=dict)
