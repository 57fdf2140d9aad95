"""The steps of `stackcert run` up to consistency: each calls one library and returns its typed result.

Steps never raise for a failing stack; an EngineError that escapes is turned into an outcome by the
runner. Results of earlier steps are read from `RunContext.results`.
"""

from __future__ import annotations

from pathlib import Path

from stackcert.bench import run_bench
from stackcert.consistency import run_consistency
from stackcert.engines.base import EngineStartError
from stackcert.env.target_probe import probe_target
from stackcert.errors import EngineError
from stackcert.evidence.findings import Finding
from stackcert.install.gate import GateRequirement, requirements_for_stack, run_import_gate
from stackcert.models import resolve_model
from stackcert.pipeline.context import ROLES, Outcome, RunContext
from stackcert.runmodel.results import ResolvedModel, ServeError, ServeResult
from stackcert.smoke import run_smoke
from stackcert.status import Status


def env_step(ctx: RunContext) -> Outcome:
    """Probe the target (this host, the container or the ssh host): Python, OS, accelerators, packages."""
    return Outcome(status=Status.PASS, result=probe_target(ctx.target))


def install_step(ctx: RunContext) -> Outcome:
    """The install gate: every engine package the stacks need imports in a clean child process."""
    reqs: list[GateRequirement] = []
    for role in ROLES:
        for req in requirements_for_stack(ctx.stack(role)):
            if req not in reqs:
                reqs.append(req)
    if not reqs:  # endpoint stacks: nothing runs here, so nothing has to import
        return Outcome(status=Status.SKIPPED, reason="no engine to import for these stacks")
    result = run_import_gate(reqs, log_dir=ctx.layout.install_dir, progress=ctx.progress, target=ctx.target)
    status = Status.PASS if result.passed else Status.FAIL
    return Outcome(status=status, reason=result.reason, result=result)


def model_step(ctx: RunContext) -> Outcome:
    """Resolve the model both stacks serve (demo, local path or hub ID)."""
    ref = resolve_model(ctx.config.model, progress=ctx.progress)
    if ctx.target.remote and not ctx.target.exists(ref.path / "config.json"):
        # The engines load it in the target; the analysis here reads its config and tokenizer.
        return Outcome(
            status=Status.FAIL,
            reason=f"the model is not in the {ctx.target.kind} target at {ref.path} (no config.json there): "
            "mount or copy it to the same path",
            result=ResolvedModel(model=ref),
        )
    return Outcome(status=Status.PASS, result=ResolvedModel(model=ref))


def serve_step(ctx: RunContext, role: str) -> Outcome:
    """Start a stack's engine; the pool keeps it up for smoke, bench and consistency."""
    stack = ctx.stack(role)
    try:
        server = ctx.pool.start(stack, ctx.need_model(), ctx.layout.stack_dir(stack.name))
    except EngineError as exc:
        error = ServeError.model_validate(exc.to_dict())
        return Outcome(
            status=Status.FAIL,
            reason=exc.one_line(),
            result=ServeResult(stack=stack.name, ok=False, error=error, findings=_findings_of(exc)),
        )
    result = ServeResult(
        stack=stack.name,
        ok=True,
        base_url=server.base_url,
        served_model=server.served_model,
        log_path=str(server.log_path or ""),
        info=server.info,
    )
    return Outcome(status=Status.PASS, result=result)


def _findings_of(exc: EngineError) -> list[Finding]:
    """What a failed start located (a start error carries findings; other engine errors none)."""
    return list(exc.findings) if isinstance(exc, EngineStartError) else []


def smoke_step(ctx: RunContext, role: str) -> Outcome:
    """Smoke a stack against its running server."""
    stack = ctx.stack(role)
    result = run_smoke(
        stack,
        ctx.need_model(),
        folder=ctx.layout.stack_dir(stack.name),
        server=ctx.server(role),
        options=ctx.config.phases.smoke.options,
        progress=ctx.progress,
    )
    reason = ""
    if result.status is not Status.PASS:
        reason = result.findings[0].located() if result.findings else f"smoke {result.status.value}"
    return Outcome(status=result.status, reason=reason, result=result)


def bench_step(ctx: RunContext, role: str) -> Outcome:
    """Benchmark a stack's running server with the configured profiles."""
    out_dir = ctx.layout.bench_dir(ctx.stack(role).name)
    _keep_earlier_attempt(out_dir)
    server = ctx.server(role)
    profiles = ctx.config.phases.bench.resolved()
    result = run_bench(server, ctx.need_model(), profiles, out_dir=out_dir, progress=ctx.progress)
    status = Status(result.status)
    return Outcome(
        status=status, reason="" if status is Status.PASS else f"bench {status.value}", result=result
    )


def _keep_earlier_attempt(out_dir: Path) -> None:
    """A rerun (resume) must not lose what an interrupted attempt recorded: move it aside."""
    if out_dir.exists() and any(out_dir.iterdir()):
        n = 1
        while out_dir.with_name(f"{out_dir.name}.attempt{n}").exists():
            n += 1
        out_dir.rename(out_dir.with_name(f"{out_dir.name}.attempt{n}"))


def consistency_step(ctx: RunContext) -> Outcome:
    """Reference vs candidate: greedy tokens, log-probs and task accuracy, judged statistically."""
    result = run_consistency(
        ctx.server("reference"),
        ctx.server("candidate"),
        ctx.need_model(),
        options=ctx.config.phases.consistency.options,
        out_dir=ctx.layout.consistency_dir,
        progress=ctx.progress,
    )
    passed = result.status == "pass"
    return Outcome(
        status=Status.PASS if passed else Status.FAIL,
        reason="" if passed else f"consistency {result.status}",
        result=result,
    )
