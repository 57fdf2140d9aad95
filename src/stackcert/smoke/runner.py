"""The smoke step for one stack: Phase A offline generation, Phase B served API checks.

Phase B reuses a running server when the caller passes one (the pipeline starts one engine per
stack for smoke, consistency and bench); otherwise it starts one and always stops it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, Server, ServerTimeouts
from stackcert.errors import EngineError, StepTimeout
from stackcert.evidence.findings import Component, Finding, Layer, Severity
from stackcert.evidence.signature import signature
from stackcert.jsonio import read_json
from stackcert.progress import NullProgress, Progress
from stackcert.secrets import auth_headers
from stackcert.smoke.checks import SERVE_CHECKS, Outcome, ServeContext, run_check
from stackcert.smoke.models import CheckResult, PhaseResult, SmokeOptions, SmokeResult, overall
from stackcert.smoke.offline import offline_phase
from stackcert.status import Status

_ENGINE_COMPONENT = {"vllm": Component.VLLM, "transformers": Component.TRANSFORMERS}


def _check_finding(
    phase: str, name: str, detail: str, layer: Layer, category: str, component: Component
) -> Finding:
    return Finding(
        step="smoke",
        phase=phase,
        layer=layer,
        component=component,
        category=category or "check_failed",
        severity=Severity.ERROR,
        # Check name + category + normalised detail: equal for the same failure on two stacks.
        signature=signature(f"smoke.{phase}.{name}.{category}", None, detail.split(":")[0]),
        message=f"{name}: {detail}",
    )


def _log_cause(log_findings: list[Finding]) -> Finding | None:
    errors = [f for f in log_findings if f.severity == Severity.ERROR]
    return errors[0] if errors else None


def _locate(phase: str, outcome: Outcome, stack: StackSpec, log_findings: list[Finding]) -> Finding:
    """A failed check becomes a finding; the server log (classifier) names the component when it can."""
    r = outcome.result
    cause = _log_cause(log_findings)
    if cause is not None and (outcome.transport_error or r.status == Status.CRASH):
        # The engine logged why it stopped answering: that is the located cause.
        return cause.model_copy(
            update={"step": "smoke", "phase": phase, "message": f"{r.name}: {cause.message}"}
        )
    if outcome.layer == Layer.L6_NUMERICS:
        component = cause.component if cause else Component.UNKNOWN
    else:
        component = _ENGINE_COMPONENT.get(stack.engine, Component.UNKNOWN)
    return _check_finding(phase, r.name, r.detail, outcome.layer, outcome.category, component)


async def serve_checks(
    server: Server, stack: StackSpec, model: ModelRef, options: SmokeOptions, progress: Progress
) -> PhaseResult:
    """Every Phase B check against a running server; a dead server turns the rest into skips."""
    started = time.monotonic()
    ctx = ServeContext(
        base_url=server.base_url,
        served_model=server.served_model,
        has_chat_template=model.has_chat_template or model.chat_template is not None,
        options=options,
    )
    phase = PhaseResult()
    timeout = httpx.Timeout(options.request_timeout_s, connect=min(10.0, options.request_timeout_s))
    limits = httpx.Limits(max_connections=max(options.concurrency, 4) + 2)
    progress.on_start("smoke serve", total=len(SERVE_CHECKS))
    # (a keyed endpoint's key goes on every request: stackcert.secrets)
    headers = auth_headers(server.base_url)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False, headers=headers) as client:
        down = False
        for name, fn, requests in SERVE_CHECKS:
            if down:
                phase.checks.append(
                    CheckResult(name=name, status=Status.SKIPPED, detail="the server is down")
                )
                continue
            outcome = await run_check(name, fn, client, ctx, requests)
            if outcome.result.status.bad:
                if not server.alive():
                    outcome.result.status = Status.CRASH
                    outcome.result.detail += " (the server process died)"
                    down = True
                outcome.result.finding = _locate("serve", outcome, stack, _safe_findings(server))
            phase.checks.append(outcome.result)
            progress.on_advance("smoke serve")
            progress.on_message("smoke serve", f"{name}: {outcome.result.status.value}")
    progress.on_finish("smoke serve", phase.finish().status.value)
    if options.prompts and options.prompts[0].name in ctx.greedy:
        phase.output_sample = ctx.greedy[options.prompts[0].name][0]
    phase.duration_s = round(time.monotonic() - started, 3)
    return phase


def _safe_findings(server: Server) -> list[Finding]:
    try:
        return list(server.findings())
    except Exception:  # diagnosis must never hide the check result itself
        return []


def _start_failure(exc: Exception, stack: StackSpec) -> CheckResult:
    findings: list[Finding] = list(getattr(exc, "findings", []) or [])
    timed_out = isinstance(exc, StepTimeout) or any(f.category in ("stall", "timeout") for f in findings)
    status = Status.TIMEOUT if timed_out else Status.FAIL
    detail = exc.one_line() if hasattr(exc, "one_line") else str(exc)
    finding = _log_cause(findings) or _check_finding(
        "serve",
        "start",
        detail,
        Layer.L5_SERVING,
        "start_failed",
        _ENGINE_COMPONENT.get(stack.engine, Component.UNKNOWN),
    )
    finding = finding.model_copy(update={"step": "smoke", "phase": "serve"})
    return CheckResult(name="start", status=status, detail=detail, finding=finding)


def _run_serve(
    stack: StackSpec,
    model: ModelRef,
    run_dir: Path,
    server: Server | None,
    options: SmokeOptions,
    progress: Progress,
) -> tuple[PhaseResult, str | None, float | None]:
    """Phase B; returns (phase, server log path, start seconds when this call started the engine)."""
    if server is not None:
        return asyncio.run(serve_checks(server, stack, model, options, progress)), _log(server), None
    from stackcert.engines import launch_server  # the engine layer; imported late (heavy)

    started = time.monotonic()
    progress.on_message("smoke serve", f"starting {stack.engine} for stack '{stack.name}'")
    try:
        with launch_server(
            stack, model, run_dir=run_dir, timeouts=_timeouts(options), progress=progress
        ) as live:
            # Startup is timed, never counted as a pass: only the checks below can pass the phase.
            start_s = round(time.monotonic() - started, 3)
            return asyncio.run(serve_checks(live, stack, model, options, progress)), _log(live), start_s
    except (EngineError, StepTimeout) as exc:
        check = _start_failure(exc, stack)
        check.duration_s = round(time.monotonic() - started, 3)
        phase = PhaseResult(checks=[check], reason="the engine did not start").finish()
        log = getattr(exc, "log_path", None)
        return phase, str(log) if log else None, None


def _timeouts(options: SmokeOptions) -> ServerTimeouts:
    return ServerTimeouts(absolute=options.start_timeout_s, request=options.request_timeout_s)


def _log(server: Server) -> str | None:
    return str(server.log_path) if server.log_path else None


def read_effective_ops(folder: Path) -> list[str] | None:
    """The operators the engine reported as replaced (effective_ops.json, written by the engine layer)."""
    for name in ("effective_ops.json", "server.json"):
        path = folder / name
        try:
            data = read_json(path) if path.exists() else None
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            data = data.get("effective", data.get("effective_ops"))
        if isinstance(data, list):
            return [str(x) for x in data]
    return None


def run_smoke(
    stack: StackSpec,
    model: ModelRef,
    *,
    folder: Path,
    server: Server | None = None,
    options: SmokeOptions | None = None,
    progress: Progress | None = None,
) -> SmokeResult:
    """Smoke one stack; `folder` is the stack's own (server.log, effective_ops.json). Never raises for a
    failing stack; the caller writes the result."""
    options = options or SmokeOptions()
    progress = progress or NullProgress()
    t0 = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)

    phase_a = offline_phase(stack, model, folder, options, progress)
    timings = {"offline_s": phase_a.duration_s}
    if options.serve:
        phase_b, log_path, start_s = _run_serve(stack, model, folder, server, options, progress)
        if start_s is not None:
            timings["start_s"] = start_s
    else:
        phase_b, log_path = PhaseResult(reason="serve phase turned off"), None
    timings["serve_s"] = phase_b.duration_s
    timings["total_s"] = round(time.monotonic() - t0, 3)

    result = SmokeResult(
        status=overall([phase_a, phase_b]),
        stack=stack.name,
        engine=stack.engine,
        model=model.served_name,
        stack_components=list(stack.components),
        stack_env=dict(stack.env),
        stack_unset_env=list(stack.unset_env),
        phase_a_offline=phase_a,
        phase_b_serve=phase_b,
        output_sample=phase_b.output_sample or phase_a.output_sample,
        timings=timings,
        findings=[c.finding for c in [*phase_a.checks, *phase_b.checks] if c.finding is not None],
        # The running server's own record when the caller gave it; the engine's file otherwise.
        effective_ops=(server.info.effective_ops if server is not None else None)
        or read_effective_ops(folder),
        log_path=log_path,
    )
    return result
