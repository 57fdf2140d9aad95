"""The three consistency phases on two running servers: greedy tokens judged by cross-scoring,
teacher-forced log-probs judged against noise and tolerance, paired task accuracy — the last two
sampling more texts / items while their decision is inconclusive, up to a budget."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from stackcert.consistency.client import CompletionsClient, Scored, gather_bounded
from stackcert.consistency.crossscore import cross_score
from stackcert.consistency.logprobs import TokenDiffs, compare_scores, judge, token_diffs
from stackcert.consistency.options import ConsistencyOptions, LogprobPhase, TaskPhase, TokenPhase, combine
from stackcert.consistency.tasks import Task, TaskComparison, compare_task, load_task
from stackcert.consistency.texts import builtin_prompts, load_prompt_file, sharegpt_texts, tokenizer_truncator
from stackcert.consistency.tokens import (
    PromptComparison,
    apply_fallback,
    apply_judgement,
    compare_generations,
    summarise,
)
from stackcert.consistency.tolerance import Envelope, combine_decisions, envelope_for
from stackcert.engines.base import ModelRef
from stackcert.errors import EngineError
from stackcert.progress import Progress

T = TypeVar("T")
R = TypeVar("R")


class Sides:
    """The two clients, the progress hooks and the concurrency shared by every phase."""

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


def envelope_of(model: ModelRef, opts: ConsistencyOptions) -> Envelope:
    """The equivalence envelope for the model's dtype (or the one the options name)."""
    return envelope_for(opts.tolerance.dtype if opts.tolerance.dtype != "auto" else model.dtype)


def eos_keys(model: ModelRef) -> list[str]:
    """End-of-sequence token keys ("id:N") from the checkpoint's generation/model config, if readable."""
    ids: set[int] = set()
    for name in ("generation_config.json", "config.json"):
        try:
            value = json.loads((Path(model.path) / name).read_text()).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, int):
                ids.add(v)
    return [f"id:{i}" for i in sorted(ids)]


def _advance(progress: Progress, task: str) -> Callable[[], None]:
    return lambda: progress.on_advance(task)


def _prompts(opts: ConsistencyOptions) -> list[str]:
    return load_prompt_file(opts.prompts_file) if opts.prompts_file else builtin_prompts()


async def tokens_phase(sides: Sides, model: ModelRef, opts: ConsistencyOptions) -> TokenPhase:
    """Greedy outputs on both stacks; every divergent prompt is cross-scored (or the fallback decides)."""
    s = opts.tokens
    ref, cand = await sides.both(
        "tokens", _prompts(opts), lambda c, p: c.generate(p, max_tokens=s.max_tokens, top_k=s.top_k)
    )
    rows = [compare_generations(i, r, c, s) for i, (r, c) in enumerate(zip(ref, cand, strict=True))]
    pending = [row for row in rows if row.rule == "pending"]
    env = envelope_of(model, opts)
    limit = s.regret_limit if s.regret_limit is not None else opts.tolerance.margin * env.regret
    source = (
        "fixed (tokens.regret_limit)"
        if s.regret_limit is not None
        else f"{opts.tolerance.margin} × the equivalence envelope's regret {env.regret:.3g} ({env.source})"
    )
    keys = eos_keys(model)

    async def judge_row(row: PromptComparison) -> PromptComparison:
        if not s.cross_score or row.divergence is None:
            return apply_fallback(row, s, "cross-scoring off")
        try:
            j = await cross_score(
                sides.ref,
                sides.cand,
                ref[row.index],
                cand[row.index],
                start=row.divergence.position,
                top_k=s.top_k,
                max_tokens=s.max_tokens,
                limit=limit,
                limit_source=source,
                eos_keys=keys,
            )
        except EngineError as exc:  # no token ids / no log-probs on one side: say so, decide by fallback
            return apply_fallback(row, s, f"cross-scoring unavailable: {exc.one_line()}")
        return apply_judgement(row, j)

    if pending:
        sides.progress.on_start("cross-scoring", total=len(pending))
        await gather_bounded(
            pending, judge_row, sides.conc, lambda: sides.progress.on_advance("cross-scoring")
        )
    summary = summarise(rows)
    return TokenPhase(status=summary.status, summary=summary, prompts=rows)


def _score_texts(model: ModelRef, opts: ConsistencyOptions, n_sharegpt: int) -> list[str]:
    """The prompt set plus the first n ShareGPT texts (deterministic order, so more = a superset)."""
    prompts = _prompts(opts)
    if n_sharegpt <= 0:
        return prompts
    cut = tokenizer_truncator(model.tokenizer)
    return prompts + sharegpt_texts(n_sharegpt, opts.token_budget, cut)


async def logprob_phase(sides: Sides, model: ModelRef, opts: ConsistencyOptions) -> LogprobPhase:
    """Teacher-forced scoring, the batch noise at the same load, and the tolerance decision; more
    ShareGPT texts are scored (doubling, up to the budget) while a check is inconclusive."""
    k = opts.score_top_k
    env = envelope_of(model, opts)

    async def score(c: CompletionsClient, t: str) -> Scored:
        return await c.score(t, top_k=k)

    texts: list[str] = []
    ref: list[Scored] = []
    cand: list[Scored] = []
    again: list[Scored] = []
    diffs, noise = TokenDiffs(), TokenDiffs()
    n_share, rounds, wall = opts.sharegpt_texts, 0, 0.0
    # sharegpt_texts 0 means none: then there is nothing to add either.
    budget = max(opts.sharegpt_texts, opts.max_sharegpt_texts) if opts.sharegpt_texts > 0 else 0
    while True:
        rounds += 1
        new = _score_texts(model, opts, n_share)[len(texts) :]
        t0 = time.perf_counter()
        r, c = await sides.both(f"logprobs (round {rounds})", new, score)
        wall += time.perf_counter() - t0
        texts, ref, cand = texts + new, ref + r, cand + c
        diffs = diffs.extend(token_diffs(r, c))
        if opts.noise_floor:
            # The reference again at the same concurrency in reverse order: other batch compositions,
            # the same load shape as the comparison (vLLM is not batch-invariant).
            task = f"noise (round {rounds})"
            sides.progress.on_start(task, total=len(new))
            back = await gather_bounded(
                new[::-1], lambda t: score(sides.ref, t), sides.conc, _advance(sides.progress, task)
            )
            back = back[::-1]
            again += back
            noise = noise.extend(token_diffs(r, back))
        checks = judge(diffs, noise if opts.noise_floor else None, env, opts.tolerance)
        decision = combine_decisions([c.decision for c in checks])
        if decision != "inconclusive" or n_share >= budget:
            break
        n_share = min(budget, max(1, 2 * n_share))
    n_tokens = sum(len(s.steps) for s in ref) + sum(len(s.steps) for s in cand)
    return LogprobPhase(
        status="pass" if decision == "pass" else "fail" if decision == "fail" else "retest",
        top_k=k,
        texts=len(texts),
        comparison=compare_scores(ref, cand),
        noise_floor=compare_scores(ref, again) if again else None,
        envelope=env,
        tolerance=opts.tolerance,
        rounds=rounds,
        checks=checks,
        wall_s=wall,
        tokens_per_s=n_tokens / wall if wall > 0 else 0.0,
    )


async def _one_task(sides: Sides, opts: ConsistencyOptions, name: str) -> tuple[TaskComparison, int]:
    full = load_task(name)
    start = opts.task_limit or len(full.items)
    budget = min(len(full.items), max(start, opts.task_budget or len(full.items)))
    n, rounds = 0, 0
    ref_out: list[str] = []
    cand_out: list[str] = []
    while True:
        rounds += 1
        target = min(budget, start if n == 0 else 2 * n)
        items = full.items[n:target]
        r, c = await sides.both(
            f"task {full.name} (round {rounds})",
            items,
            lambda cl, it: cl.generate(it.prompt, max_tokens=opts.task_max_tokens, top_k=None, stop=it.stop),
        )
        ref_out += [g.text for g in r]
        cand_out += [g.text for g in c]
        n = target
        part = Task(name=full.name, source=full.source, items=full.items[:n], max_tokens=full.max_tokens)
        result = compare_task(part, ref_out, cand_out, opts.rules)
        if result.status != "retest" or n >= budget:
            return result, rounds


async def task_phase(sides: Sides, model: ModelRef, opts: ConsistencyOptions, out_dir: Path) -> TaskPhase:
    """Paired accuracy per task; inconclusive tasks take more items (doubling) up to the budget."""
    comparisons = []
    rounds = 1
    for name in opts.tasks:
        result, r = await _one_task(sides, opts, name)
        comparisons.append(result)
        rounds = max(rounds, r)
    if opts.lmeval_tasks:
        from stackcert.consistency.lmeval import compare_lmeval_task

        for name in opts.lmeval_tasks:
            comparisons.append(
                await asyncio.to_thread(compare_lmeval_task, sides, model, name, opts, out_dir / "lmeval")
            )
    return TaskPhase(status=combine([c.status for c in comparisons]), rounds=rounds, tasks=comparisons)
