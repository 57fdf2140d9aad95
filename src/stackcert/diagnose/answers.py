"""Probe answers from a served engine and their judgement against the reference's.

A bisect probe through a server (vLLM) asks a few greedy completions with top-k log-probs, one at a
time (sequential requests keep a server's batch composition fixed), and compares them with the
reference's answers to the same prompts. The judgement tolerates what numerics legitimately do:

- log-probs are compared on the tokens both top-k lists hold, up to the first divergence;
- a divergence is a **near tie** (accepted, comparison of that prompt stops there) when the
  reference itself scored the candidate's token within ``tol`` of its own choice;
- anything else is a ``mismatch``; a |Δ log-prob| above ``tol`` is ``drift``; NaN/inf is ``nan``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from stackcert.diagnose.bisect import ProbeOutcome
from stackcert.engines.base import Server
from stackcert.engines.client import post_json

DEFAULT_PROMPTS = (
    "Question: What is 12+7?\nAnswer:",
    "The capital of France is",
    "The three primary colors are",
)


class Answer(BaseModel):
    """One greedy completion: token ids and, per position, the top-k {token id: log-prob}."""

    prompt: str
    text: str = ""
    tokens: list[int] = Field(default_factory=list)
    top: list[dict[int, float]] = Field(default_factory=list)


def _token_id(key: str) -> int:
    return int(key.removeprefix("token_id:"))


def parse_choice(prompt: str, choice: dict[str, Any]) -> Answer:
    """An Answer from one `/v1/completions` choice asked with `return_tokens_as_token_ids`."""
    block = choice.get("logprobs") or {}
    tokens = [_token_id(t) for t in block.get("tokens") or []]
    top = [{_token_id(k): float(v) for k, v in (d or {}).items()} for d in block.get("top_logprobs") or []]
    return Answer(prompt=prompt, text=choice.get("text") or "", tokens=tokens, top=top)


def collect(
    server: Server,
    prompts: tuple[str, ...] | list[str] = DEFAULT_PROMPTS,
    *,
    max_tokens: int = 8,
    top_k: int = 5,
    timeout: float = 120.0,
    step: str = "bisect",
) -> list[Answer]:
    """Greedy answers with top-k log-probs, one request at a time (RequestError when one fails)."""
    out = []
    for prompt in prompts:
        body = {
            "model": server.served_model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "seed": 0,
            "logprobs": top_k,
            "return_tokens_as_token_ids": True,
        }
        data = post_json(server, "/v1/completions", body, timeout=timeout, step=step)
        out.append(parse_choice(prompt, data["choices"][0]))
    return out


def judge(reference: list[Answer], candidate: list[Answer], *, tol: float) -> ProbeOutcome:
    """Pass, or nan / mismatch / drift with the reason (see the module docstring)."""
    worst = 0.0
    ties = 0
    for ref, cand in zip(reference, candidate, strict=True):
        if any(math.isnan(v) or v == math.inf for top in cand.top for v in top.values()):
            return ProbeOutcome(
                passed=False, category="nan", reason=f"non-finite log-probs for {cand.prompt!r}"
            )
        if ref.tokens and not cand.tokens:
            return ProbeOutcome(passed=False, category="mismatch", reason=f"no answer to {cand.prompt!r}")
        n = min(len(ref.tokens), len(cand.tokens), len(ref.top), len(cand.top))
        for i in range(n):
            common = set(ref.top[i]) & set(cand.top[i])
            if common:
                worst = max(worst, max(abs(ref.top[i][t] - cand.top[i][t]) for t in common))
            if ref.tokens[i] == cand.tokens[i]:
                continue
            mine = ref.top[i].get(cand.tokens[i])
            own = ref.top[i].get(ref.tokens[i])
            if mine is not None and own is not None and own - mine <= tol:
                ties += 1
                break
            return ProbeOutcome(
                passed=False,
                category="mismatch",
                reason=f"greedy tokens diverge at position {i} of {cand.prompt!r} (not a near tie)",
                metrics={"max_abs_logprob_delta": worst, "first_divergence": float(i)},
            )
    metrics = {"max_abs_logprob_delta": worst, "near_ties": float(ties)}
    if worst > tol:
        return ProbeOutcome(
            passed=False, category="drift", reason=f"max |Δ log-prob| {worst:.4g} > {tol:g}", metrics=metrics
        )
    return ProbeOutcome(passed=True, category="pass", metrics=metrics)
