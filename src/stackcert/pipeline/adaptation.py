"""The model-adaptation steps: weight gate A (dummy weights), the feature matrix, weight gates A + B.

Stage A starts the candidate once more with `--load-format dummy` before the real engines start, in
eager mode: it asks whether the port builds the architecture, allocates the KV cache and answers a
request — graph capture is the feature matrix's question, and an eager start costs ~60 s instead of
~200 s on 2 CPU cores. Stage B is the same request-level check on the candidate's real-weights
server, and only stage B can allow a PASS.
"""

from __future__ import annotations

from stackcert.engines.base import ServerTimeouts
from stackcert.evidence.findings import Finding
from stackcert.features import dummy_weight_gate, probe_features, real_weight_gate, weight_gates
from stackcert.features.models import GateCheck
from stackcert.pipeline.context import Outcome, RunContext
from stackcert.status import Status


def dummy_weights_step(ctx: RunContext) -> Outcome:
    """Stage A: the candidate (eager) on dummy weights starts, lists the model and answers a request."""
    stack = ctx.stack("candidate")
    if stack.engine == "vllm":
        stack = stack.model_copy(update={"engine_args": {**stack.engine_args, "enforce_eager": True}})
    start = ctx.ledger.engine_started(f"{stack.name} (dummy weights)", None)
    gate = dummy_weight_gate(
        stack,
        ctx.need_model(),
        run_dir=ctx.layout.dummy_gate_dir,
        timeouts=ServerTimeouts(absolute=ctx.config.timeouts.engine_start),
        progress=ctx.progress,
        target=ctx.target,
    )
    start.ok, start.log_path = gate.started, gate.log_path
    ctx.ledger.save()
    if gate.status is Status.SKIPPED:
        detail = gate.check.detail if gate.check is not None else "not a vLLM stack"
        return Outcome(status=Status.SKIPPED, reason=detail, result=gate)
    reason = "" if gate.status is Status.PASS else _gate_reason("dummy", gate.check, gate.findings)
    return Outcome(status=gate.status, reason=reason, result=gate)


def features_step(ctx: RunContext) -> Outcome:
    """The candidate's feature matrix, probed on its running server within the phase's budget."""
    matrix = probe_features(
        ctx.server("candidate"),
        ctx.stack("candidate"),
        ctx.need_model(),
        options=ctx.config.phases.features.options,
        progress=ctx.progress,
    )
    supported = sum(1 for r in matrix.features if r.outcome == "supported")
    return Outcome(
        status=Status.PASS, reason=f"{supported} of {len(matrix.features)} supported", result=matrix
    )


def weights_step(ctx: RunContext) -> Outcome:
    """Stage B on the candidate's real-weights server, with stage A: both gates and their matrix."""
    stage_b = real_weight_gate(ctx.server("candidate"))
    gates = weight_gates(
        ctx.stack("candidate"),
        stage_a=ctx.results.dummy_weights,
        stage_b=stage_b,
        reference=ctx.stack("reference"),
    )
    if not gates.pass_allowed:
        return Outcome(
            status=Status.FAIL, reason=_gate_reason("real", stage_b.check, stage_b.findings), result=gates
        )
    return Outcome(status=Status.PASS, result=gates)


def _gate_reason(stage: str, check: GateCheck | None, findings: list[Finding]) -> str:
    """Why a stage failed: the start's first finding, else the serving check's detail."""
    if findings:
        return f"{stage}-weight gate: {findings[0].located()}"
    detail = check.detail if check is not None and check.detail else "no request-level answer"
    return f"{stage}-weight gate: {detail}"
