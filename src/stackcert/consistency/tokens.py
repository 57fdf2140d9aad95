"""Greedy token comparison: where the two stacks part, and whether the parting is a fault.

At temperature 0 both stacks should emit the same tokens, but tiny numeric differences flip near
ties. Token identity therefore decides nothing on its own: every divergent prompt is cross-scored
(crossscore.py) — each side's continuation teacher-forced through the other stack — and the other
stack's own opinion of those tokens decides, with the numbers recorded. Where a server cannot be
cross-scored (no token ids), the top-k fallback rule decides and says so.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stackcert.consistency.client import Generation, TokenStep
from stackcert.consistency.crossscore import Judgement

PromptStatus = Literal["identical", "diverged_ok", "diverged_fail", "broken_output"]
Rule = Literal["identical", "cross_score", "top_k_fallback", "pending"]


class TokenSettings(BaseModel):
    """Sizes and limits of the greedy-token comparison."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(64, ge=1)
    top_k: int = Field(5, ge=1)
    cross_score: bool = Field(True, description="judge divergences by cross-scoring (else top-k fallback)")
    regret_limit: float | None = Field(
        None, description="fixed regret limit in nats; None = margin × the equivalence envelope's regret"
    )
    tie_margin: float = Field(
        0.125,
        description="fallback rule only: a divergence passes when both tokens are in each other's top-k "
        "and each side prefers its own by at most this many nats (one bf16 ulp of a logit of 16-32)",
    )
    repeat_window: int = Field(24, description="tail length checked for degenerate repetition")
    repeat_max_period: int = 4


class Divergence(BaseModel):
    """The first position where the two greedy outputs part (or where the shorter one ended)."""

    position: int
    reference_token: str | None
    candidate_token: str | None
    reference_in_candidate_topk: bool = False
    candidate_in_reference_topk: bool = False
    # log p(own token) − log p(other's token) on each side, when both are listed: a near tie is small.
    reference_margin: float | None = None
    candidate_margin: float | None = None


class PromptComparison(BaseModel):
    """One prompt on both stacks: texts, where they part, the rule that decided and why."""

    index: int
    prompt: str
    status: PromptStatus
    rule: Rule = "pending"
    reason: str = ""
    reference_text: str
    candidate_text: str
    reference_tokens: int
    candidate_tokens: int
    matched_tokens: int
    divergence: Divergence | None = None
    judgement: Judgement | None = None
    flags: list[str] = Field(default_factory=list)


def degenerate(tokens: list[str], window: int = 24, max_period: int = 4) -> bool:
    """True when the last `window` tokens are one short cycle (period ≤ max_period) repeated."""
    if len(tokens) < window:
        return False
    tail = tokens[-window:]
    return any(all(tail[i] == tail[i % p] for i in range(window)) for p in range(1, max_period + 1))


def first_divergence(ref: list[str], cand: list[str]) -> int | None:
    """Index of the first differing token, or None when one is a prefix of the other."""
    for i, (a, b) in enumerate(zip(ref, cand, strict=False)):
        if a != b:
            return i
    return None


def _shape_flags(side: str, gen: Generation, other: Generation, s: TokenSettings) -> list[str]:
    flags = []
    toks = [st.token for st in gen.steps]
    if not toks:
        flags.append(f"{side}_empty")
    elif gen.finish_reason == "length" and other.finish_reason == "stop" and len(toks) > len(other.steps):
        flags.append(f"{side}_ran_on")  # the other side stopped; this one hit max_tokens
    elif gen.finish_reason == "stop" and other.finish_reason == "length" and len(toks) < len(other.steps):
        flags.append(f"{side}_truncated")  # stopped early where the other kept going
    if degenerate(toks, s.repeat_window, s.repeat_max_period):
        flags.append(f"{side}_degenerate")
    return flags


def _margin(step: TokenStep | None, other: str | None) -> float | None:
    if step is None or other is None:
        return None
    own = step.top.get(step.token, step.logprob)
    alt = step.top.get(other)
    return None if own is None or alt is None else own - alt


def _divergence(ref: Generation, cand: Generation) -> Divergence | None:
    rt = [st.token for st in ref.steps]
    ct = [st.token for st in cand.steps]
    pos = first_divergence(rt, ct)
    if pos is None:
        if len(rt) == len(ct):
            return None
        pos = min(len(rt), len(ct))  # one ended where the other went on
    r_step = ref.steps[pos] if pos < len(rt) else None
    c_step = cand.steps[pos] if pos < len(ct) else None
    r_tok = r_step.token if r_step else None
    c_tok = c_step.token if c_step else None
    return Divergence(
        position=pos,
        reference_token=r_tok,
        candidate_token=c_tok,
        reference_in_candidate_topk=bool(c_step and r_tok in c_step.top),
        candidate_in_reference_topk=bool(r_step and c_tok in r_step.top),
        reference_margin=_margin(r_step, c_tok),
        candidate_margin=_margin(c_step, r_tok),
    )


def compare_generations(index: int, ref: Generation, cand: Generation, s: TokenSettings) -> PromptComparison:
    """Locate the divergence and the shape flags; identical prompts are decided, others are pending."""
    div = _divergence(ref, cand)
    flags = _shape_flags("reference", ref, cand, s) + _shape_flags("candidate", cand, ref, s)
    return PromptComparison(
        index=index,
        prompt=ref.prompt,
        status="identical" if div is None else "diverged_fail",
        rule="identical" if div is None else "pending",
        reason="same tokens" if div is None else "not judged yet",
        reference_text=ref.text,
        candidate_text=cand.text,
        reference_tokens=len(ref.steps),
        candidate_tokens=len(cand.steps),
        matched_tokens=div.position if div else len(ref.steps),
        divergence=div,
        flags=flags,
    )


def apply_judgement(row: PromptComparison, judgement: Judgement) -> PromptComparison:
    """Record a cross-scoring decision on a divergent prompt."""
    row.judgement = judgement
    row.rule = judgement.rule
    row.status = "diverged_ok" if judgement.ok else "diverged_fail"
    row.reason = judgement.reason
    return row


def _candidate_only_breakage(flags: list[str]) -> set[str]:
    own = {f.removeprefix("candidate_") for f in flags if f.startswith("candidate_")}
    theirs = {f.removeprefix("reference_") for f in flags if f.startswith("reference_")}
    return (own - theirs) & {"empty", "degenerate"}


def apply_fallback(row: PromptComparison, s: TokenSettings, why: str) -> PromptComparison:
    """Without cross-scoring: mutual top-k within the tie margin passes; candidate-only breakage fails."""
    div = row.divergence
    row.rule = "top_k_fallback"
    broken = _candidate_only_breakage(row.flags)
    if broken:
        row.status = "broken_output"
        row.reason = f"candidate output {', '.join(sorted(broken))} where the reference's is not ({why})"
        return row
    if div is None:
        row.status, row.reason = "identical", "same tokens"
        return row
    mutual = div.reference_in_candidate_topk and div.candidate_in_reference_topk
    margins = [m for m in (div.reference_margin, div.candidate_margin) if m is not None]
    tie = mutual and len(margins) == 2 and all(abs(m) <= s.tie_margin for m in margins)
    row.status = "diverged_ok" if tie else "diverged_fail"
    row.reason = (
        f"top-k fallback ({why}): at token {div.position} "
        + ("a near tie within the tie margin" if tie else "not a mutual near tie")
        + f" (margins {div.reference_margin}, {div.candidate_margin}; limit {s.tie_margin})"
    )
    return row


FAILING: frozenset[str] = frozenset({"diverged_fail", "broken_output"})


class TokenSummary(BaseModel):
    """Counts over the prompts of the token phase."""

    prompts: int
    identical: int
    diverged_ok: int
    failed: int
    cross_scored: int = 0
    fallback: int = 0
    flags: dict[str, int]
    mean_matched_fraction: float
    status: Literal["pass", "fail"]


def summarise(rows: list[PromptComparison]) -> TokenSummary:
    """Count statuses and flags; the phase fails when any prompt fails."""
    flags: dict[str, int] = {}
    for r in rows:
        for f in r.flags:
            flags[f] = flags.get(f, 0) + 1
    failed = sum(r.status in FAILING for r in rows)
    fracs = [r.matched_tokens / max(1, r.reference_tokens) for r in rows]
    return TokenSummary(
        prompts=len(rows),
        identical=sum(r.status == "identical" for r in rows),
        diverged_ok=sum(r.status == "diverged_ok" for r in rows),
        failed=failed,
        cross_scored=sum(r.rule == "cross_score" for r in rows),
        fallback=sum(r.rule == "top_k_fallback" for r in rows),
        flags=flags,
        mean_matched_fraction=min(1.0, sum(fracs) / len(fracs)) if fracs else 1.0,
        status="fail" if failed else "pass",
    )
