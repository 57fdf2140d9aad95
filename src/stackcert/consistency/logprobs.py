"""Teacher-forced log-prob comparison: per-token KL(reference‖candidate), top-1 agreement, |Δ log-prob|.

KL estimator (servers return only the top-k log-probs, plus the actual token's): the categories are
the union U of both sides' listed tokens plus one tail bucket. A side's listed tokens keep their
probabilities; a token of U it did not list is imputed at min(its smallest listed probability,
tail / (missing + 1)) — it cannot be larger than anything listed — and what is left of its tail mass
(1 − listed − imputed) is the tail bucket. Both sides then sum to 1 over the same categories and
KL = Σ p·log(p/q) with both floored at 1e-10. With k ≥ 5 on a peaked model the tail is small and the
estimate is close to the full-vocabulary KL; it never reports a difference the listed tokens don't show.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, Field

from stackcert.consistency.client import Scored, TokenStep
from stackcert.consistency.tolerance import Check, Envelope, ToleranceSettings, judge_metric

FLOOR = 1e-10


def _side(top: dict[str, float], cats: list[str]) -> list[float]:
    probs = {k: math.exp(v) for k, v in top.items()}
    listed = sum(probs.values())
    tail = max(0.0, 1.0 - listed)
    missing = [c for c in cats if c not in probs]
    smallest = min(probs.values()) if probs else 0.0
    each = min(smallest, tail / (len(missing) + 1)) if missing else 0.0
    out = [probs.get(c, each) for c in cats]
    out.append(max(FLOOR, tail - each * len(missing)))
    return out


def kl_topk(ref_top: dict[str, float], cand_top: dict[str, float]) -> float:
    """KL(reference‖candidate) over the top-k union plus a tail bucket (see module docstring).

    A NaN log-prob on either side gives +inf: it must never look like agreement."""
    if any(math.isnan(v) for v in (*ref_top.values(), *cand_top.values())):
        return math.inf
    cats = sorted(set(ref_top) | set(cand_top))
    p = np.maximum(np.asarray(_side(ref_top, cats)), FLOOR)
    q = np.maximum(np.asarray(_side(cand_top, cats)), FLOOR)
    p, q = p / p.sum(), q / q.sum()
    return float(max(0.0, np.sum(p * np.log(p / q))))


def _argmax(top: dict[str, float]) -> str | None:
    return max(top, key=lambda k: top[k]) if top else None


class TextDiff(BaseModel):
    """How the two stacks' log-probs differ over one scored text: KL, top-1 agreement, largest Δlogprob."""

    index: int
    tokens: int
    mean_kl: float
    max_kl: float
    top1_agree: float
    max_abs_dlogprob: float
    token_mismatch: bool = Field(False, description="the two sides tokenised the text differently")


class LogprobStats(BaseModel):
    """Log-prob differences over all scored texts: KL mean/p99/max, top-1 agreement, Δlogprob spread."""

    texts: int
    tokens: int
    mean_kl: float
    p99_kl: float
    max_kl: float
    top1_agreement: float
    dlogprob_p50: float
    dlogprob_p90: float
    dlogprob_p99: float
    dlogprob_max: float
    token_mismatches: int
    per_text: list[TextDiff] = Field(default_factory=list)


def _pairs(ref: list[TokenStep], cand: list[TokenStep]) -> tuple[list[tuple[TokenStep, TokenStep]], bool]:
    n = min(len(ref), len(cand))
    mismatch = len(ref) != len(cand) or any(ref[i].token != cand[i].token for i in range(n))
    return [(ref[i], cand[i]) for i in range(n) if ref[i].token == cand[i].token], mismatch


def compare_scores(ref: list[Scored], cand: list[Scored]) -> LogprobStats:
    """Per-token comparison of two scorings of the same texts (same order)."""
    kls: list[float] = []
    dlps: list[float] = []
    agree = 0
    per_text = []
    mismatches = 0
    for i, (r, c) in enumerate(zip(ref, cand, strict=True)):
        pairs, mismatch = _pairs(r.steps, c.steps)
        mismatches += mismatch
        t_kl = [kl_topk(a.top, b.top) for a, b in pairs]
        t_dlp = [
            abs(a.logprob - b.logprob) for a, b in pairs if a.logprob is not None and b.logprob is not None
        ]
        t_agree = sum(_argmax(a.top) == _argmax(b.top) for a, b in pairs)
        kls += t_kl
        dlps += t_dlp
        agree += t_agree
        per_text.append(
            TextDiff(
                index=i,
                tokens=len(pairs),
                mean_kl=float(np.mean(t_kl)) if t_kl else 0.0,
                max_kl=max(t_kl, default=0.0),
                top1_agree=t_agree / len(pairs) if pairs else 1.0,
                max_abs_dlogprob=max(t_dlp, default=0.0),
                token_mismatch=mismatch,
            )
        )
    k = np.asarray(kls or [0.0])
    d = np.asarray(dlps or [0.0])
    return LogprobStats(
        texts=len(ref),
        tokens=len(kls),
        mean_kl=float(k.mean()),
        p99_kl=float(np.percentile(k, 99)),
        max_kl=float(k.max()),
        top1_agreement=agree / len(kls) if kls else 1.0,
        dlogprob_p50=float(np.percentile(d, 50)),
        dlogprob_p90=float(np.percentile(d, 90)),
        dlogprob_p99=float(np.percentile(d, 99)),
        dlogprob_max=float(d.max()),
        token_mismatches=mismatches,
        per_text=per_text,
    )


class TokenDiffs(BaseModel):
    """Per-token differences grouped by text: the units a cluster bootstrap resamples."""

    kl: list[list[float]] = Field(default_factory=list)
    disagree: list[list[float]] = Field(default_factory=list)
    dlogprob: list[list[float]] = Field(default_factory=list)

    def extend(self, other: TokenDiffs) -> TokenDiffs:
        """Both samples together (sequential sampling adds texts)."""
        return TokenDiffs(
            kl=self.kl + other.kl,
            disagree=self.disagree + other.disagree,
            dlogprob=self.dlogprob + other.dlogprob,
        )


def token_diffs(ref: list[Scored], cand: list[Scored]) -> TokenDiffs:
    """Per-text arrays of per-token KL, top-1 disagreement (0/1) and |Δ log-prob|."""
    out = TokenDiffs()
    for r, c in zip(ref, cand, strict=True):
        pairs, _ = _pairs(r.steps, c.steps)
        out.kl.append([kl_topk(a.top, b.top) for a, b in pairs])
        out.disagree.append([float(_argmax(a.top) != _argmax(b.top)) for a, b in pairs])
        out.dlogprob.append(
            [abs(a.logprob - b.logprob) for a, b in pairs if a.logprob is not None and b.logprob is not None]
        )
    return out


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else 0.0


def _p99(x: np.ndarray) -> float:
    return float(np.percentile(x, 99)) if x.size else 0.0


METRICS = (
    ("mean_kl", "kl", _mean),
    ("top1_disagreement", "disagree", _mean),
    ("dlogprob_p99", "dlogprob", _p99),
)


def judge(
    diffs: TokenDiffs, noise: TokenDiffs | None, envelope: Envelope, settings: ToleranceSettings
) -> list[Check]:
    """Each metric against max(margin × envelope, k × noise): bootstrap bounds over texts decide."""
    checks = []
    for metric, attr, stat in METRICS:
        groups = getattr(diffs, attr)
        noise_groups = getattr(noise, attr) if noise is not None else []
        pooled_noise = np.concatenate([np.asarray(g, float) for g in noise_groups if g] or [np.zeros(0)])
        checks.append(
            judge_metric(
                metric,
                groups,
                stat,
                noise=stat(pooled_noise),
                tolerance=settings.margin * float(getattr(envelope, metric)),
                settings=settings,
                fixed=getattr(settings, f"fixed_{metric}"),
                checks=len(METRICS),
            )
        )
    return checks
