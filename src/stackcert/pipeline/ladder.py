"""The isolation ladder: name the component that breaks the candidate, one engine start per level.

A preset's ``levels`` go from the reference to the candidate, each flipping exactly one switch of
the one before (``switches`` checks that). When the candidate fails and the reference passes,
``ladder_step`` starts each level in between in order, asks it the probe prompts and judges its
answers against the reference's (:mod:`stackcert.diagnose.answers`). The first level that fails names
the switch, and the component that switch turns on; if every level in between passes, the
candidate's own last switch is the one. The operator bisection then runs only when that component is
an operator library.
"""

from __future__ import annotations

import time

from stackcert.config import StackSpec
from stackcert.diagnose import answers
from stackcert.diagnose.vllm_probe import reference_answers
from stackcert.engines.base import EngineStartError
from stackcert.errors import EngineError
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.evidence.signature import signature
from stackcert.pipeline.analysis import OPERATOR_COMPONENTS, kept_answers
from stackcert.pipeline.context import Outcome, RunContext
from stackcert.runmodel.results import LadderResult, LevelTry
from stackcert.status import Status

_LAYER = {
    "flag_gems": Layer.L3_KERNELS,
    "triton": Layer.L3_KERNELS,
    "flagcx": Layer.L4_COLLECTIVES,
    "vllm_fl": Layer.L5_SERVING,
}


def switches(before: StackSpec, after: StackSpec) -> dict[str, tuple[str | None, str | None]]:
    """The environment switches that differ between two stacks: name -> (before, after); None = unset."""
    a, b = before.child_env({}), after.child_env({})
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def added_component(before: StackSpec, after: StackSpec) -> str | None:
    """The component a level adds (the last one it names when it adds none new: a feature of it)."""
    new = [c for c in after.components if c not in before.components]
    if new:
        return new[-1]
    return after.components[-1] if after.components else None


def ladder_reason(ctx: RunContext) -> str | None:
    """None when the ladder should be walked, else why not."""
    levels = ctx.config.levels
    cfg = ctx.config
    if len(levels) < 3 or levels[0] != cfg.reference or levels[-1] != cfg.candidate:
        return "no isolation ladder between the reference and the candidate (levels)"
    led = ctx.ledger
    if led.status("reference.serve") is not Status.PASS or led.status("reference.smoke") is not Status.PASS:
        return "not needed: the reference stack does not pass"
    if not any(led.status(s).bad for s in ("candidate.serve", "candidate.smoke", "consistency")):
        return "not needed: the candidate does not fail"
    return None


def _try_level(ctx: RunContext, stack: StackSpec, reference: list[answers.Answer]) -> LevelTry:
    """Start one level through the run's pool (counted in the ledger), ask the probes, stop it."""
    t0 = time.monotonic()
    rec = LevelTry(level=stack.name)
    try:
        server = ctx.pool.start(stack, ctx.need_model(), ctx.layout.ladder_dir(stack.name))
        rec.startup_s = server.info.startup_s
        got = answers.collect(server, [a.prompt for a in reference], step="ladder")
        outcome = answers.judge(reference, got, tol=0.5)
        rec.passed, rec.category, rec.reason = outcome.passed, outcome.category, outcome.reason
    except EngineStartError as err:
        head = err.findings[0] if err.findings else None
        rec.category, rec.reason = "start_failed", head.located() if head else str(err)
    except EngineError as err:
        rec.category, rec.reason = "crash", str(err)[:500]
    finally:
        ctx.pool.stop(stack.name)
    rec.seconds = round(time.monotonic() - t0, 2)
    return rec


def ladder_step(ctx: RunContext) -> Outcome:
    """Walk the levels between the reference and the candidate; name the first failing switch."""
    why_not = ladder_reason(ctx)
    if why_not:
        return Outcome(status=Status.SKIPPED, reason=why_not)
    cfg = ctx.config
    stacks = [ctx.with_runtime(cfg.stacks[name]) for name in cfg.levels]
    reference = kept_answers(ctx) or reference_answers(
        stacks[0], ctx.need_model(), run_dir=ctx.layout.ladder_dir(stacks[0].name)
    )
    records: list[LevelTry] = []
    failing = len(stacks) - 1  # the candidate fails: the default answer
    for i in range(1, len(stacks) - 1):
        rec = _try_level(ctx, stacks[i], reference)
        rec.switch = {k: list(v) for k, v in switches(stacks[i - 1], stacks[i]).items()}
        records.append(rec)
        if not rec.passed:
            failing = i
            break
    before, level = stacks[failing - 1], stacks[failing]
    flipped = switches(before, level)
    component = added_component(before, level)
    message = (
        f"level '{level.name}' is the first that fails; it flips {', '.join(flipped) or 'nothing'} "
        f"over '{before.name}', which turns on {component or 'no named component'}"
    )
    finding = Finding(
        step="ladder",
        phase="isolation",
        layer=_LAYER.get(component or "", Layer.L5_SERVING),
        component=Component(component) if component in set(Component) else Component.UNKNOWN,
        category="isolation_level",
        signature=signature("isolation_level", None, f"{level.name} {component}"),
        message=message,
    )
    result = LadderResult(
        levels=cfg.levels,
        walked=records,
        failing_level=level.name,
        passing_level=before.name,
        switch={k: list(v) for k, v in flipped.items()},
        component=component,
        operator_library=component in OPERATOR_COMPONENTS,
        engine_starts=len(records),
        findings=[finding],
    )
    return Outcome(status=Status.PASS, reason=message, result=result)
