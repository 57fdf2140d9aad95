"""Cross-scoring of a greedy divergence: each side's continuation is teacher-forced through the other
stack, and the other stack's own opinion of those tokens decides.

At temperature 0 a stack emits its own argmax. Where two correct builds of a model part, the
candidate's continuation is one the reference would emit itself, up to near ties: fed the candidate's
prefix, the reference ranks each candidate token at (or within the tolerance of) its top. The
**regret** of a token under a scorer is `log p(scorer's top token) − log p(token)` (≥ 0): 0 where the
scorer agrees, small at a near tie, large where the scorer finds the token implausible. If every
per-token log-prob of two builds differs by at most δ, every regret is at most 2δ, so the limit comes
from the equivalence envelope (tolerance.py), never from token identity or position: an exact tie at
token 0 followed by a repetition the reference shares passes; a continuation the reference ranks
beyond the tolerance fails, wherever it happens.

Stops are judged the same way: a side that ended (end-of-sequence) where the other went on is scored
by the other's probability of ending there; a stop the other stack makes too costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from stackcert.consistency.client import (
    CompletionsClient,
    Generation,
    IdScore,
    TokenStep,
    prompt_token_ids,
    score_token_ids,
    token_id,
)

Side = Literal["reference", "candidate"]


class CrossScore(BaseModel):
    """One side's continuation from the divergence on, as the other stack rates it."""

    continuation_of: Side
    scored_by: Side
    start: int = Field(description="first scored position (the divergence)")
    tokens: int = Field(description="continuation tokens scored")
    max_regret: float = 0.0
    mean_regret: float = 0.0
    over_limit: int = Field(0, description="positions whose regret exceeds the limit")
    worst_position: int | None = None
    worst_token: str | None = None
    scorer_top_token: str | None = Field(None, description="what the scorer prefers at the worst position")
    stop_regret: float | None = Field(None, description="regret of ending where this side ended")
    stop_is_lower_bound: bool = Field(False, description="end-of-sequence was not listed: regret ≥ value")


class Judgement(BaseModel):
    """How a divergent prompt was decided: the rule, the limit and the numbers behind it."""

    rule: Literal["cross_score", "top_k_fallback"]
    ok: bool
    regret_limit: float
    limit_source: str
    candidate_under_reference: CrossScore | None = None
    reference_under_candidate: CrossScore | None = None
    reason: str


def regret(step: TokenStep) -> float | None:
    """log p(top) − log p(actual token) at one scored position; None when the server gave no log-prob."""
    if step.logprob is None:
        return None
    top = max([*step.top.values(), step.logprob])
    return max(0.0, top - step.logprob)


def _top_token(step: TokenStep) -> str | None:
    return max(step.top, key=lambda k: step.top[k]) if step.top else None


def stop_regret(score: IdScore, eos_keys: Sequence[str]) -> tuple[float | None, bool]:
    """Regret of ending after the scored sequence: 0 when the scorer ends there too.

    Exact when an end-of-sequence token is among the scorer's listed tokens; otherwise a lower bound
    (its log-prob is below the smallest listed one)."""
    if score.next_finish == "stop" or score.next_step is None:
        return (0.0 if score.next_finish == "stop" else None), False
    nxt = score.next_step
    if nxt.token in eos_keys:
        return 0.0, False
    listed = {**nxt.top, nxt.token: nxt.logprob if nxt.logprob is not None else -1e9}
    top = max(listed.values())
    eos = [listed[k] for k in eos_keys if k in listed]
    if eos:
        return max(0.0, top - max(eos)), False
    return max(0.0, top - min(listed.values())), True


def rate_continuation(
    continuation_of: Side,
    score: IdScore,
    prompt_len: int,
    start: int,
    limit: float,
    *,
    stopped: bool,
    eos_keys: Sequence[str],
) -> CrossScore:
    """Regrets of the continuation tokens at positions ≥ start (prompt_len ids precede them)."""
    scored_by: Side = "reference" if continuation_of == "candidate" else "candidate"
    steps = score.steps[prompt_len + start :]
    regrets = [(i + start, r, s) for i, s in enumerate(steps) if (r := regret(s)) is not None]
    out = CrossScore(continuation_of=continuation_of, scored_by=scored_by, start=start, tokens=len(steps))
    if regrets:
        pos, worst, step = max(regrets, key=lambda t: t[1])
        out.max_regret, out.worst_position = worst, pos
        out.worst_token, out.scorer_top_token = step.token, _top_token(step)
        out.mean_regret = sum(r for _, r, _ in regrets) / len(regrets)
        out.over_limit = sum(r > limit for _, r, _ in regrets)
    if stopped:
        out.stop_regret, out.stop_is_lower_bound = stop_regret(score, eos_keys)
    return out


def decide(
    cand_under_ref: CrossScore, ref_under_cand: CrossScore, limit: float, limit_source: str
) -> Judgement:
    """Explained by numerical difference when no token nor stop of either side costs the other stack
    more than the limit; otherwise the worst offender is named."""
    offenders: list[str] = []
    for cs in (cand_under_ref, ref_under_cand):
        if cs.max_regret > limit:
            offenders.append(
                f"the {cs.scored_by} ranks the {cs.continuation_of}'s token {cs.worst_token} at position "
                f"{cs.worst_position} {cs.max_regret:.3f} nats below its own top {cs.scorer_top_token} "
                f"({cs.over_limit} of {cs.tokens} tokens beyond {limit:.3f})"
            )
        if cs.stop_regret is not None and cs.stop_regret > limit:
            bound = "≥ " if cs.stop_is_lower_bound else ""
            offenders.append(
                f"the {cs.continuation_of} ended where the {cs.scored_by} ranks ending {bound}"
                f"{cs.stop_regret:.3f} nats below its top token"
            )
    worst = max(cand_under_ref.max_regret, ref_under_cand.max_regret)
    reason = (
        "; ".join(offenders)
        if offenders
        else f"each side's continuation is within {worst:.3f} nats of the other stack's own top choice "
        f"(limit {limit:.3f}): a numerical near tie, not a fault"
    )
    return Judgement(
        rule="cross_score",
        ok=not offenders,
        regret_limit=limit,
        limit_source=limit_source,
        candidate_under_reference=cand_under_ref,
        reference_under_candidate=ref_under_cand,
        reason=reason,
    )


def _stopped(gen: Generation, max_tokens: int) -> bool:
    return gen.finish_reason == "stop" and len(gen.steps) < max_tokens


async def cross_score(
    ref_client: CompletionsClient,
    cand_client: CompletionsClient,
    ref: Generation,
    cand: Generation,
    *,
    start: int,
    top_k: int,
    max_tokens: int,
    limit: float,
    limit_source: str,
    eos_keys: Sequence[str],
) -> Judgement:
    """Teacher-force each side's continuation through the other stack and decide (EngineError when a
    server cannot: no token ids, no log-probs)."""
    ids = await prompt_token_ids(ref_client, ref.prompt)
    ref_ids = [token_id(s.token) for s in ref.steps]
    cand_ids = [token_id(s.token) for s in cand.steps]
    if any(i is None for i in [*ref_ids, *cand_ids]):
        from stackcert.errors import EngineError

        raise EngineError("a generation named tokens by string, not id", where=ref_client.url)
    r_cont = [i for i in ref_ids if i is not None]
    c_cont = [i for i in cand_ids if i is not None]
    # The EOS a side emitted is part of its continuation when the server lists it; then it is scored
    # like any token, and the stop needs no separate judgement.
    c_score = await score_token_ids(ref_client, ids + c_cont, top_k=top_k)
    r_score = await score_token_ids(cand_client, ids + r_cont, top_k=top_k)
    c_stop = _stopped(cand, max_tokens) and not (cand.steps and cand.steps[-1].token in eos_keys)
    r_stop = _stopped(ref, max_tokens) and not (ref.steps and ref.steps[-1].token in eos_keys)
    cur = rate_continuation("candidate", c_score, len(ids), start, limit, stopped=c_stop, eos_keys=eos_keys)
    ruc = rate_continuation("reference", r_score, len(ids), start, limit, stopped=r_stop, eos_keys=eos_keys)
    return decide(cur, ruc, limit, limit_source)
