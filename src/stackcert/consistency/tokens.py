"""Greedy token comparison: first divergence, the top-k cross rule, and output-shape flags.

At temperature 0 both stacks should emit the same tokens. Tiny numeric differences can flip a near
tie; that is acceptable when each side's token is in the other's top-k at the divergence (the
"top-k rule"), but not in the first few tokens, where a flip means the model reads the prompt
differently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from stackcert.consistency.client import Generation, TokenStep

PromptStatus = Literal[
    "identical", "diverged_ok", "early_near_tie", "diverged_fail", "early_divergence", "broken_output"
]


class TokenSettings(BaseModel):
    max_tokens: int = 64
    top_k: int = 5
    early_tokens: int = Field(3, description="a divergence before this position fails outright")
    tie_margin: float = Field(
        0.125,
        description="an early divergence passes as a near tie when both tokens are in each other's "
        "top-k and each side prefers its own token by at most this many nats (one bf16 ulp of a logit "
        "of magnitude 16-32: below the precision the model computes in); 0 disables the exception",
    )
    repeat_window: int = Field(24, description="tail length checked for degenerate repetition")
    repeat_max_period: int = 4


class Divergence(BaseModel):
    position: int
    reference_token: str
    candidate_token: str
    reference_in_candidate_topk: bool
    candidate_in_reference_topk: bool
    # log p(own token) − log p(other's token) on each side, when both are listed: a near tie is small.
    reference_margin: float | None = None
    candidate_margin: float | None = None


class PromptComparison(BaseModel):
    index: int
    prompt: str
    status: PromptStatus
    reference_text: str
    candidate_text: str
    reference_tokens: int
    candidate_tokens: int
    matched_tokens: int
    divergence: Divergence | None = None
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


def _margin(step: TokenStep, other: str) -> float | None:
    own = step.top.get(step.token, step.logprob)
    alt = step.top.get(other)
    return None if own is None or alt is None else own - alt


def _near_tie(div: Divergence, tie_margin: float) -> bool:
    """Both tokens mutually in top-k and both sides nearly indifferent between them."""
    if tie_margin <= 0 or not (div.reference_in_candidate_topk and div.candidate_in_reference_topk):
        return False
    margins = (div.reference_margin, div.candidate_margin)
    return all(m is not None and abs(m) <= tie_margin for m in margins)


def compare_generations(index: int, ref: Generation, cand: Generation, s: TokenSettings) -> PromptComparison:
    rt = [st.token for st in ref.steps]
    ct = [st.token for st in cand.steps]
    flags = _shape_flags("reference", ref, cand, s) + _shape_flags("candidate", cand, ref, s)
    pos = first_divergence(rt, ct)
    div: Divergence | None = None
    if pos is not None:
        r_step: TokenStep = ref.steps[pos]
        c_step: TokenStep = cand.steps[pos]
        div = Divergence(
            position=pos,
            reference_token=r_step.token,
            candidate_token=c_step.token,
            reference_in_candidate_topk=r_step.token in c_step.top,
            candidate_in_reference_topk=c_step.token in r_step.top,
            reference_margin=_margin(r_step, c_step.token),
            candidate_margin=_margin(c_step, r_step.token),
        )
    status: PromptStatus
    # Output broken on the candidate only (empty / degenerate where the reference is not) is a failure
    # in its own right, whatever the divergence rule says.
    cand_only = {f.removeprefix("candidate_") for f in flags if f.startswith("candidate_")} - {
        f.removeprefix("reference_") for f in flags if f.startswith("reference_")
    }
    if cand_only & {"empty", "degenerate"}:
        status = "broken_output"
    elif div is None:
        status = "identical" if len(rt) == len(ct) else "diverged_ok"
    elif div.position < s.early_tokens:
        status = "early_near_tie" if _near_tie(div, s.tie_margin) else "early_divergence"
    elif div.reference_in_candidate_topk and div.candidate_in_reference_topk:
        status = "diverged_ok"
    else:
        status = "diverged_fail"
    return PromptComparison(
        index=index,
        prompt=ref.prompt,
        status=status,
        reference_text=ref.text,
        candidate_text=cand.text,
        reference_tokens=len(rt),
        candidate_tokens=len(ct),
        matched_tokens=pos if pos is not None else min(len(rt), len(ct)),
        divergence=div,
        flags=flags,
    )


FAILING: frozenset[str] = frozenset({"diverged_fail", "early_divergence", "broken_output"})


class TokenSummary(BaseModel):
    prompts: int
    identical: int
    diverged_ok: int
    early_near_tie: int = 0
    failed: int
    flags: dict[str, int]
    mean_matched_fraction: float
    status: Literal["pass", "fail"]


def summarise(rows: list[PromptComparison]) -> TokenSummary:
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
        early_near_tie=sum(r.status == "early_near_tie" for r in rows),
        failed=failed,
        flags=flags,
        mean_matched_fraction=sum(fracs) / len(fracs) if fracs else 1.0,
        status="fail" if failed else "pass",
    )
