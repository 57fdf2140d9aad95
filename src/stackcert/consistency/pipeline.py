"""`run_consistency`: greedy tokens, teacher-forced log-probs and paired task accuracy, ref vs candidate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from stackcert.consistency.client import CompletionsClient, NoLogprobs, Scored, gather_bounded
from stackcert.consistency.logprobs import compare_scores, judge
from stackcert.consistency.options import (
    ConsistencyOptions,
    ConsistencyResult,
    LogprobPhase,
    TaskPhase,
    TokenPhase,
    combine,
)
from stackcert.consistency.tasks import compare_task, load_task
from stackcert.consistency.texts import builtin_prompts, load_prompt_file, sharegpt_texts, tokenizer_truncator
from stackcert.consistency.tokens import FAILING, compare_generations, summarise
from stackcert.diagnose.findings import Component, Finding, Layer
from stackcert.engines.base import ModelRef, Server
from stackcert.errors import EngineError
from stackcert.jsonio import envelope, now_iso, write_json_atomic
from stackcert.progress import NullProgress, Progress

T = TypeVar("T")
R = TypeVar("R")
STEP = "consistency"


def run_consistency(
    reference: Server,
    candidate: Server,
    model: ModelRef,
    *,
    options: ConsistencyOptions,
    out_dir: Path,
    progress: Progress | None = None,
) -> ConsistencyResult:
    """Compare two running servers of the same model; writes {tokens,logprobs,tasks}.json in out_dir."""
    return asyncio.run(
        _run(
            reference, candidate, model, options=options, out_dir=out_dir, progress=progress or NullProgress()
        )
    )


class _Sides:
    def __init__(self, ref: CompletionsClient, cand: CompletionsClient, progress: Progress, conc: int):
        self.ref, self.cand, self.progress, self.conc = ref, cand, progress, conc

    async def both(
        self, task: str, items: Sequence[T], fn: Callable[[CompletionsClient, T], Awaitable[R]]
    ) -> tuple[list[R], list[R]]:
        """Run fn over items on the reference, then on the candidate (so neither skews the other)."""
        self.progress.on_start(task, total=2 * len(items))
        adv = lambda: self.progress.on_advance(task)  # noqa: E731
        r = await gather_bounded(items, lambda it: fn(self.ref, it), self.conc, adv)
        c = await gather_bounded(items, lambda it: fn(self.cand, it), self.conc, adv)
        return r, c


def _no_logprobs_finding(exc: NoLogprobs, phase: str) -> Finding:
    return Finding(
        step=STEP,
        phase=phase,
        layer=Layer.L5_SERVING,
        component=Component.CLIENT,
        category="no_logprobs",
        signature="server returned no logprobs",
        message=f"{exc.one_line()}; the {phase} comparison cannot be judged",
    )


def _write(out_dir: Path, name: str, payload: dict[str, Any], started: str) -> str:
    path = out_dir / f"{name}.json"
    write_json_atomic(path, envelope(f"consistency.{name}", payload, started=started))
    return str(path)


async def _tokens_phase(sides: _Sides, opts: ConsistencyOptions) -> TokenPhase:
    prompts = load_prompt_file(opts.prompts_file) if opts.prompts_file else builtin_prompts()
    s = opts.tokens
    ref, cand = await sides.both(
        "tokens", prompts, lambda c, p: c.generate(p, max_tokens=s.max_tokens, top_k=s.top_k)
    )
    rows = [compare_generations(i, r, c, s) for i, (r, c) in enumerate(zip(ref, cand, strict=True))]
    summary = summarise(rows)
    return TokenPhase(status=summary.status, summary=summary, prompts=rows)


def _score_texts(model: ModelRef, opts: ConsistencyOptions) -> list[str]:
    prompts = load_prompt_file(opts.prompts_file) if opts.prompts_file else builtin_prompts()
    if opts.sharegpt_texts <= 0:
        return prompts
    cut = tokenizer_truncator(model.tokenizer)
    return sharegpt_texts(opts.sharegpt_texts, opts.token_budget, cut) + prompts


async def _logprob_phase(sides: _Sides, model: ModelRef, opts: ConsistencyOptions) -> LogprobPhase:
    texts = _score_texts(model, opts)
    k = opts.score_top_k

    async def score(c: CompletionsClient, t: str) -> Scored:
        return await c.score(t, top_k=k)

    t0 = time.perf_counter()
    ref, cand = await sides.both("logprobs", texts, score)
    wall = time.perf_counter() - t0
    stats = compare_scores(ref, cand)
    floor = None
    if opts.noise_floor:
        # The reference again, one request at a time: a different batch composition than the first pass.
        sides.progress.on_start("noise floor", total=len(texts))
        again = await gather_bounded(
            texts, lambda t: score(sides.ref, t), 1, lambda: sides.progress.on_advance("noise floor")
        )
        floor = compare_scores(ref, again)
    checks = judge(stats, floor or stats.model_copy(update=_ZERO), opts.thresholds)
    n_tokens = sum(len(s.steps) for s in ref) + sum(len(s.steps) for s in cand)
    return LogprobPhase(
        status="pass" if all(c.ok for c in checks) else "fail",
        top_k=k,
        texts=len(texts),
        comparison=stats,
        noise_floor=floor,
        checks=checks,
        wall_s=wall,
        tokens_per_s=n_tokens / wall if wall > 0 else 0.0,
    )


_ZERO = {"mean_kl": 0.0, "top1_agreement": 1.0, "dlogprob_p99": 0.0}


async def _task_phase(sides: _Sides, model: ModelRef, opts: ConsistencyOptions, out_dir: Path) -> TaskPhase:
    comparisons = []
    for name in opts.tasks:
        task = load_task(name, limit=opts.task_limit)
        ref, cand = await sides.both(
            f"task {task.name}",
            task.items,
            lambda c, it: c.generate(it.prompt, max_tokens=opts.task_max_tokens, top_k=None, stop=["\n"]),
        )
        comparisons.append(compare_task(task, [g.text for g in ref], [g.text for g in cand], opts.rules))
    if opts.lmeval_tasks:
        from stackcert.consistency.lmeval import compare_lmeval_task

        for name in opts.lmeval_tasks:
            comparisons.append(
                await asyncio.to_thread(compare_lmeval_task, sides, model, name, opts, out_dir / "lmeval")
            )
    return TaskPhase(status=combine([c.status for c in comparisons]), tasks=comparisons)


def _gate_finding(phase: str, result: ConsistencyResult) -> Finding | None:
    """A failed comparison is a located L6 finding, so reports and FAQs can explain the verdict."""
    message: str | None = None
    if phase == "tokens" and result.tokens and result.tokens.status == "fail" and result.tokens.summary:
        bad = [p for p in result.tokens.prompts if p.status in FAILING]
        first = bad[0] if bad else None
        message = f"{result.tokens.summary.failed} of {result.tokens.summary.prompts} prompts failed the " + (
            f"greedy-token rules (first: {first.status} at token {first.divergence.position})"
            if first and first.divergence
            else "greedy-token rules"
        )
    elif phase == "logprobs" and result.logprobs and result.logprobs.status == "fail":
        over = [c for c in result.logprobs.checks if not c.ok]
        message = "teacher-forced log-probs differ beyond the limits: " + ", ".join(
            f"{c.metric} {c.value:.4g} > {c.limit:.4g} (noise floor {c.floor:.4g})" for c in over
        )
    elif phase == "tasks" and result.tasks and result.tasks.status == "fail":
        message = "task accuracy dropped: " + ", ".join(
            f"{t.task} {t.reference_accuracy:.3f} → {t.candidate_accuracy:.3f} (n={t.items})"
            for t in result.tasks.tasks
            if t.status == "fail"
        )
    if message is None:
        return None
    return Finding(
        step=STEP,
        phase=phase,
        layer=Layer.L6_NUMERICS,
        category=f"{phase}_mismatch",
        signature=f"consistency:{phase}_mismatch",
        message=message,
    )


async def _run(
    reference: Server,
    candidate: Server,
    model: ModelRef,
    *,
    options: ConsistencyOptions,
    out_dir: Path,
    progress: Progress,
) -> ConsistencyResult:
    result = ConsistencyResult(status="pass", reference=reference.stack.name, candidate=candidate.stack.name)
    opts = options
    async with (
        CompletionsClient(reference.base_url, reference.served_model, timeout_s=opts.timeout_s) as rc,
        CompletionsClient(candidate.base_url, candidate.served_model, timeout_s=opts.timeout_s) as cc,
    ):
        sides = _Sides(rc, cc, progress, opts.concurrency)
        for phase in opts.phases:
            started = now_iso()
            try:
                if phase == "tokens":
                    result.tokens = await _tokens_phase(sides, opts)
                    payload: dict[str, Any] = result.tokens.model_dump(mode="json")
                elif phase == "logprobs":
                    result.logprobs = await _logprob_phase(sides, model, opts)
                    payload = result.logprobs.model_dump(mode="json")
                else:
                    result.tasks = await _task_phase(sides, model, opts, out_dir)
                    payload = result.tasks.model_dump(mode="json")
                progress.on_finish(phase, str(payload["status"]))
                gate = _gate_finding(phase, result)
                if gate is not None:
                    result.findings.append(gate)
                    payload["findings"] = [gate.model_dump(mode="json")]
            except NoLogprobs as exc:
                finding = _no_logprobs_finding(exc, phase)
                result.findings.append(finding)
                payload = {"status": "fail", "findings": [finding.model_dump(mode="json")]}
                if phase == "tokens":
                    result.tokens = TokenPhase(status="fail")
                elif phase == "logprobs":
                    result.logprobs = LogprobPhase(status="fail")
                progress.on_finish(phase, "fail")
            except EngineError as exc:
                finding = Finding(
                    step=STEP,
                    phase=phase,
                    category="request_failed",
                    component=Component.CLIENT,
                    message=exc.one_line(),
                )
                result.findings.append(finding)
                payload = {"status": "fail", "findings": [finding.model_dump(mode="json")]}
                progress.on_finish(phase, "fail")
            payload = {"reference": result.reference, "candidate": result.candidate, **payload}
            result.files[phase] = _write(out_dir, phase, payload, started)
    statuses = [p.status for p in (result.tokens, result.logprobs, result.tasks) if p is not None]
    statuses += ["fail" for f in result.findings]
    result.status = combine(statuses)
    return result
