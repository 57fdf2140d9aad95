"""Phase A: greedy offline generation on the built-in prompts (no server, no HTTP)."""

from __future__ import annotations

import time
from pathlib import Path

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, OfflineResult
from stackcert.errors import EngineError, StepTimeout
from stackcert.evidence.findings import Component, Finding, Layer, Severity
from stackcert.evidence.signature import signature
from stackcert.progress import Progress
from stackcert.smoke.models import CheckResult, PhaseResult, SmokeOptions
from stackcert.smoke.quality import text_problems
from stackcert.status import Status

_TIMEOUT_CATEGORIES = ("stall", "start_timeout", "timeout")


def _finding(name: str, detail: str, layer: Layer, category: str, component: Component) -> Finding:
    return Finding(
        step="smoke",
        phase="offline",
        layer=layer,
        component=component,
        category=category,
        severity=Severity.ERROR,
        signature=signature(f"smoke.offline.{name}.{category}", None, detail.split(":")[0]),
        message=f"{name}: {detail}",
    )


def _failed_run(detail: str, findings: list[Finding], timed_out: bool, engine: str) -> CheckResult:
    errors = [f for f in findings if f.severity == Severity.ERROR]
    timed_out = timed_out or any(f.category in _TIMEOUT_CATEGORIES for f in errors)
    if errors:
        finding = errors[0].model_copy(update={"step": "smoke", "phase": "offline"})
    else:
        component = Component.VLLM if engine == "vllm" else Component.UNKNOWN
        finding = _finding("generate", detail, Layer.L5_SERVING, "offline_failed", component)
    status = Status.TIMEOUT if timed_out else Status.FAIL
    return CheckResult(name="generate", status=status, detail=detail, finding=finding)


def quality_checks(result: OfflineResult, options: SmokeOptions) -> list[CheckResult]:
    """One check per prompt: the offline greedy text passes the output-quality rules."""
    checks = []
    for prompt, completion in zip(options.prompts, result.completions, strict=False):
        problems = text_problems(
            completion.text, completion.finish_reason, expect=prompt.expect, thresholds=options.quality
        )
        name = f"quality:{prompt.name}"
        if not problems:
            checks.append(CheckResult(name=name, status=Status.PASS, detail=repr(completion.text[:80])))
            continue
        detail = "; ".join(problems)
        wrong = prompt.expect is not None and all(p.startswith("expected") for p in problems)
        category = "wrong_answer" if wrong else "bad_output"
        finding = _finding(name, detail, Layer.L6_NUMERICS, category, Component.UNKNOWN)
        checks.append(CheckResult(name=name, status=Status.FAIL, detail=detail, finding=finding))
    return checks


def offline_phase(
    stack: StackSpec, model: ModelRef, run_dir: Path, options: SmokeOptions, progress: Progress
) -> PhaseResult:
    """Phase A: offline greedy generation, then the output-quality checks on every text."""
    if not options.offline:
        return PhaseResult(reason="offline phase turned off (--no-offline)")
    if stack.engine == "endpoint":
        return PhaseResult(reason="an endpoint stack has no offline mode")
    from stackcert.engines import run_offline  # the engine layer; imported late (heavy)

    progress.on_start("smoke offline", total=None)
    started = time.monotonic()
    prompts = [p.prompt for p in options.prompts]
    result: OfflineResult | None = None
    try:
        got: OfflineResult = run_offline(
            stack,
            model,
            prompts,
            max_tokens=options.max_tokens,
            top_logprobs=0,
            run_dir=run_dir,
            timeout=options.offline_timeout_s,
        )
    except StepTimeout as exc:
        check = _failed_run(exc.one_line(), [], True, stack.engine)
    except EngineError as exc:
        check = _failed_run(exc.one_line(), list(getattr(exc, "findings", []) or []), False, stack.engine)
    else:
        result = got
        if not result.ok:
            check = _failed_run("offline generation failed", result.findings, False, stack.engine)
        elif len(result.completions) != len(prompts):
            detail = f"{len(result.completions)} completions for {len(prompts)} prompts"
            check = _failed_run(detail, [], False, stack.engine)
        else:
            check = CheckResult(name="generate", status=Status.PASS, detail=f"{len(prompts)} prompts")
    check.duration_s = round(time.monotonic() - started, 3)
    phase = PhaseResult(checks=[check])
    if result is not None and check.status == Status.PASS:
        phase.checks.extend(quality_checks(result, options))
    phase.duration_s = check.duration_s
    if result is not None and result.completions:
        phase.output_sample = result.completions[0].text
    progress.on_finish("smoke offline", phase.finish().status.value)
    return phase
