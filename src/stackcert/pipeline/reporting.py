"""The verdict and report.json from the ledger and the typed results; then report.md and report.html."""

from __future__ import annotations

from collections import Counter

from stackcert.errors import StackcertError
from stackcert.evidence.findings import Finding
from stackcert.jsonio import now_iso, write_json_atomic
from stackcert.pipeline.context import ROLES, Outcome, RunContext
from stackcert.pipeline.verdict import GateInputs, VerdictResult, decide
from stackcert.report import extract
from stackcert.report.deliverables import write_deliverables
from stackcert.report.render import write_reports
from stackcert.report.schema import FlagStep, FlagSteps, ModelSummary, Report, ServeAdvice, StackReport
from stackcert.status import Status
from stackcert.targets import TargetInfo

_FLAG_STATUS = {
    Status.PASS: "success",
    Status.SKIPPED: "skipped",
    Status.PENDING: "pending",
    Status.RUNNING: "pending",
}


def verdict_of(ctx: RunContext) -> VerdictResult:
    """The run's verdict from the step statuses and the typed gate results."""
    cfg, res = ctx.config, ctx.results
    compare = res.compare
    return decide(
        GateInputs(
            statuses={r.id: r.status for r in ctx.ledger.records()},
            consistency=res.consistency_status(),
            consistency_reasons=[f.message for f in res.findings("consistency")],
            perf_ok=compare.perf_ok if compare is not None else None,
            perf_ratio=compare.perf_ratio if compare is not None else None,
            weights_required=cfg.phases.weights.enabled,
            weights_ok=res.weights.pass_allowed if res.weights is not None else None,
            weights_reason=ctx.ledger.get("weights").reason,
            smoke_enabled=cfg.phases.smoke.enabled,
            consistency_required=cfg.gates.require_consistency and cfg.phases.consistency.enabled,
            bench_required=cfg.gates.require_bench and cfg.phases.bench.enabled,
        )
    )


def _flag(ctx: RunContext, *step_ids: str) -> FlagStep:
    records = [ctx.ledger.get(s) for s in step_ids]
    bad = [r for r in records if r.status.bad]
    if bad:
        status = "failed"
    elif all(r.status is Status.PASS for r in records):
        status = "success"
    elif any(r.status is Status.PASS for r in records):
        status = "partial"
    else:
        status = _FLAG_STATUS.get(records[0].status, "pending")
    detail = "; ".join(f"{r.id}: {r.status.value}{' — ' + r.reason if r.reason else ''}" for r in records)
    return FlagStep(
        status=status, duration_seconds=round(sum(r.duration_s or 0 for r in records), 3), detail=detail
    )


def _findings(ctx: RunContext) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[str, str, str]] = set()
    for record in ctx.ledger.records():
        for f in ctx.results.findings(record.id):
            key = (f.step, f.signature or f.message, f.phase)
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def _serve_advice(ctx: RunContext, verdict: VerdictResult) -> ServeAdvice:
    role = {"full": "candidate", "base": "reference"}.get(verdict.recommended)
    if role is None:
        return ServeAdvice()
    stack = ctx.stack(role)
    model = ctx.model
    served = model.served_name if model else (ctx.config.model.served_name or "model")
    serve = ctx.results.stack(role).serve
    argv = list(serve.info.argv) if serve is not None and serve.info is not None else []
    if argv:
        argv = extract.with_port(argv, 8000)
    elif model is not None:
        argv = extract.vllm_command(str(model.path), served, stack.launch_args(), ctx.config.model.dtype)
    return ServeAdvice(
        stack=stack.name,
        command=argv,
        env=dict(stack.env),
        unset_env=list(stack.unset_env),
        served_name=served,
        port=8000,
    )


def build_report(ctx: RunContext, *, report_running_as_pass: bool = True) -> Report:
    """report.json's model: the FlagRelease summary, the verdict and every step's typed result."""
    cfg, led, res = ctx.config, ctx.ledger, ctx.results
    verdict = verdict_of(ctx)
    timeline = [r.model_copy() for r in led.records()]
    for r in timeline:
        if r.id == "report" and r.status is Status.RUNNING and report_running_as_pass:
            r.status = Status.PASS
    errors = [f"{r.id}: {r.reason or r.status.value}" for r in timeline if r.status.bad]
    model = ctx.model
    stacks: dict[str, StackReport] = {}
    for role in ROLES:
        spec = ctx.stack(role)
        stacks[spec.name] = StackReport(
            name=spec.name,
            role=role,
            spec=spec,
            serve=led.get(f"{role}.serve"),
            smoke=res.stack(role).smoke,
            bench=res.stack(role).bench,
        )
    starts = Counter(s.stack for s in led.state.engine_starts)
    return Report(
        status=verdict.verdict.value,
        model=ModelSummary(
            name=model.served_name if model else (cfg.model.served_name or cfg.model.source),
            path=str(model.path) if model else cfg.model.path,
            source=cfg.model.source,
            dtype=cfg.model.dtype,
            max_model_len=cfg.model.max_model_len,
        ),
        steps=FlagSteps(
            install_stack=_flag(ctx, "install"),
            env_verify=_flag(ctx, "env"),
            model_verify=_flag(
                ctx,
                "model",
                "reference.serve",
                "reference.smoke",
                "candidate.serve",
                "candidate.smoke",
                "consistency",
            ),
            perf_test=_flag(ctx, "reference.bench", "candidate.bench"),
        ),
        errors=errors,
        conclusion=extract.conclusion(verdict, cfg.reference, cfg.candidate),
        run_id=led.state.run_id,
        run_dir=str(ctx.layout.root),
        created=now_iso(),
        verdict=verdict,
        reference=cfg.reference,
        candidate=cfg.candidate,
        engine_starts={name: starts.get(name, 0) for name in (cfg.reference, cfg.candidate)},
        timeline=timeline,
        target=_target_info(ctx),
        env=res.env,
        vendor_runtime=ctx.runtime() if ctx.runtime().vendor is not None else None,
        install=res.install,
        model_ref=model,
        stacks=stacks,
        features=res.features,
        weights=res.weights,
        consistency=res.consistency,
        compare=res.compare,
        bisect=res.bisect,
        findings=_findings(ctx),
        serve=_serve_advice(ctx, verdict),
        evaluation=extract.evaluation_rows(res, timeline, cfg.gates.perf_ratio),
        series=extract.series(res, cfg.reference, cfg.candidate),
        config=cfg,
    )


def report_step(ctx: RunContext) -> Outcome:
    """Write report.json (the typed Report), then report.md, report.html and the deliverables from it."""
    report = build_report(ctx)
    write_json_atomic(ctx.layout.report_json, report)
    write_reports(report, ctx.layout.root)
    # The publishable documents, from the same report (measured values only; FAIL says not certified).
    write_deliverables(report, ctx.layout.root)
    # The report is its own result file; no result in the outcome keeps the runner from overwriting it.
    ctx.ledger.get("report").result_file = ctx.layout.result_rel("report")
    return Outcome(status=Status.PASS, reason=f"verdict {report.status}")


def _target_info(ctx: RunContext) -> TargetInfo | None:
    """Where the run executed; None when the target cannot be described any more (a container gone)."""
    try:
        return ctx.target.describe()
    except StackcertError:
        return None
