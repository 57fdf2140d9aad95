"""Paired statistics for task accuracy: McNemar, a paired CI of the accuracy difference, FlagRelease rules.

Conventions: items are paired (same item on both stacks). `b` = reference right, candidate wrong;
`c` = reference wrong, candidate right. Δ accuracy is candidate minus reference.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["pass", "fail", "retest"]

# Below this many discordant pairs the chi-square approximation is poor; use the exact binomial test.
EXACT_BELOW = 25


class PairedCounts(BaseModel):
    """A 2×2 table of paired items: right on both stacks, on one only, on neither."""

    both_right: int
    ref_only: int  # b
    cand_only: int  # c
    both_wrong: int

    @property
    def n(self) -> int:
        """The number of paired items."""
        return self.both_right + self.ref_only + self.cand_only + self.both_wrong

    @classmethod
    def from_items(cls, ref: list[bool], cand: list[bool]) -> PairedCounts:
        """The table from per-item correctness on the reference and the candidate (same order)."""
        if len(ref) != len(cand):
            raise ValueError("paired lists differ in length")
        pairs = list(zip(ref, cand, strict=True))
        return cls(
            both_right=sum(r and c for r, c in pairs),
            ref_only=sum(r and not c for r, c in pairs),
            cand_only=sum(c and not r for r, c in pairs),
            both_wrong=sum(not r and not c for r, c in pairs),
        )


class McNemar(BaseModel):
    """McNemar's test on the discordant pairs: exact binomial or chi-square, its statistic and p-value."""

    method: Literal["exact", "chi2_cc", "none"]
    statistic: float | None
    p_value: float


def mcnemar(b: int, c: int, *, exact_below: int = EXACT_BELOW) -> McNemar:
    """Exact two-sided binomial test when b+c < exact_below, else chi-square with continuity correction."""
    m = b + c
    if m == 0:
        return McNemar(method="none", statistic=None, p_value=1.0)
    if m < exact_below:
        from scipy import stats as sps  # imported here: scipy costs ~0.8 s at CLI start

        p = min(1.0, 2.0 * float(sps.binom.cdf(min(b, c), m, 0.5)))
        return McNemar(method="exact", statistic=float(min(b, c)), p_value=p)
    chi2 = (abs(b - c) - 1) ** 2 / m
    from scipy import stats as sps

    return McNemar(method="chi2_cc", statistic=chi2, p_value=float(sps.chi2.sf(chi2, 1)))


def wilson(x: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = x / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired_ci(counts: PairedCounts, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% CI of Δ = p_cand − p_ref by Newcombe's hybrid score method for paired data (1998, method 10).

    Wilson intervals of both accuracies are combined with the phi correlation of the 2×2 table;
    phi is taken as 0 when a margin is empty. Unlike Wald it stays inside [−1, 1] and behaves at 0/n.
    """
    a, b, c, d = counts.both_right, counts.ref_only, counts.cand_only, counts.both_wrong
    n = counts.n
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (a + b) / n, (a + c) / n  # reference, candidate
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(den) if den > 0 else 0.0
    theta = p1 - p2
    lo = theta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = theta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return -hi, -lo  # flip to candidate − reference


def tango_paired_ci(counts: PairedCounts, z: float = 1.959963984540054) -> tuple[float, float]:
    """Score CI of Δ = p_cand − p_ref for paired data (Tango 1998), solved with brentq.

    Unlike Newcombe's hybrid interval it keeps its coverage when no pair is discordant (b = c = 0
    gives ±z²/(n + z²), the width n pairs can really vouch for), so it is the one the gate decides on.
    """
    b, c, n = counts.ref_only, counts.cand_only, counts.n
    if n == 0:
        return -1.0, 1.0
    from scipy.optimize import brentq

    def score(d: float) -> float:  # d = (b - c)/n under H0, i.e. reference minus candidate
        w = -b - c + (2 * n - b + c) * d
        p01 = (math.sqrt(max(0.0, w * w + 8 * n * c * d * (1 - d))) - w) / (4 * n)
        var = n * (2 * p01 + d * (1 - d))
        num = b - c - n * d
        if abs(num) < 1e-12:
            return 0.0
        return num / math.sqrt(var) if var > 0 else math.copysign(math.inf, num)

    est = (b - c) / n
    eps = 1e-12
    lo = -1.0 + eps if score(-1.0 + eps) <= z else brentq(lambda d: score(d) - z, -1.0 + eps, est)
    hi = 1.0 - eps if score(1.0 - eps) >= -z else brentq(lambda d: score(d) + z, est, 1.0 - eps)
    return -hi, -lo  # flip to candidate − reference


def wald_paired_ci(counts: PairedCounts, z: float = 1.959963984540054) -> tuple[float, float]:
    """Plain Wald interval of the paired difference (reported for comparison; too narrow at the edges)."""
    n = counts.n
    if n == 0:
        return -1.0, 1.0
    b, c = counts.ref_only, counts.cand_only
    delta = (c - b) / n
    se = math.sqrt(max(0.0, (b + c) - (c - b) ** 2 / n)) / n
    return delta - z * se, delta + z * se


class RuleSettings(BaseModel):
    """The accuracy gate: FlagRelease's limits as a non-inferiority margin, decided with confidence."""

    model_config = ConfigDict(extra="forbid")

    max_abs_drop: float = 0.05  # accuracy points, as a fraction (5 points)
    max_rel_drop: float = 0.05  # of the reference accuracy
    alpha: float = 0.05  # two-sided: the 95 % paired CI and McNemar's test
    power: float = 0.8  # for the smallest detectable drop reported


class RuleOutcome(BaseModel):
    """The decision of one task, with the margin, the interval and the power behind it."""

    verdict: Verdict
    abs_drop: float
    rel_drop: float
    item_diff: int
    margin: float = Field(0.0, description="largest acceptable drop: min(abs, rel × reference accuracy)")
    min_detectable_drop: float = Field(1.0, description="drop detected with the set power at this n")
    items_needed: int | None = Field(None, description="items that would decide an inconclusive task")
    reason: str


def margin_of(ref_accuracy: float, s: RuleSettings) -> float:
    """FlagRelease's two limits as one margin: the drop must stay within both."""
    return min(s.max_abs_drop, s.max_rel_drop * ref_accuracy)


def min_detectable_drop(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true drop McNemar's test detects at (alpha, power) with n pairs (Connor 1987).

    n = (z_a/2·√ψ + z_b·√(ψ − δ²))² / δ², solved for δ by bisection; the discordant rate ψ is at
    least δ (a drop of δ needs that many discordant pairs), so identical answers still give a bound.
    """
    if n <= 0:
        return 1.0
    from scipy import stats as sps

    za, zb = float(sps.norm.ppf(1 - alpha / 2)), float(sps.norm.ppf(power))

    def needed(d: float) -> float:
        psi = max(discordance, d)
        return (za * math.sqrt(psi) + zb * math.sqrt(max(0.0, psi - d * d))) ** 2 / (d * d)

    lo, hi = 1e-6, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if needed(mid) > n else (lo, mid)
    return hi


def decide_accuracy(counts: PairedCounts, settings: RuleSettings | None = None) -> RuleOutcome:
    """Non-inferiority with confidence: pass when the paired 95 % (Tango) CI of Δ stays above −margin;
    fail when it lies wholly below, or when McNemar finds a significant drop larger than the margin; otherwise
    inconclusive ("retest"), with the items that would decide it."""
    s = settings or RuleSettings()
    n = counts.n
    ref_right = counts.both_right + counts.ref_only
    item_diff = counts.ref_only - counts.cand_only
    abs_drop = item_diff / n if n else 0.0
    rel_drop = item_diff / ref_right if ref_right else 0.0
    ref_acc = ref_right / n if n else 0.0
    margin = margin_of(ref_acc, s)
    lo, hi = tango_paired_ci(counts, z=_z2(s.alpha))
    p = mcnemar(counts.ref_only, counts.cand_only).p_value
    mdd = min_detectable_drop(n, (counts.ref_only + counts.cand_only) / n if n else 0.0, s.alpha, s.power)
    common = {"abs_drop": abs_drop, "rel_drop": rel_drop, "item_diff": item_diff, "margin": margin}
    head = (
        f"Δ {(-abs_drop) * 100:+.1f} points (95 % CI {lo * 100:+.1f}..{hi * 100:+.1f}), "
        f"margin {margin * 100:.1f}"
    )
    eps = 1e-12
    if lo >= -margin - eps:
        return RuleOutcome(
            verdict="pass",
            min_detectable_drop=mdd,
            reason=f"{head}: drop bounded within the margin",
            **common,
        )
    if hi < -margin or (p < s.alpha and abs_drop > margin):
        why = (
            "the whole CI lies below −margin"
            if hi < -margin
            else f"McNemar p={p:.3g} and the drop exceeds the margin"
        )
        return RuleOutcome(verdict="fail", min_detectable_drop=mdd, reason=f"{head}: {why}", **common)
    half = (hi - lo) / 2
    room = margin - abs_drop
    needed = math.ceil(n * (half / room) ** 2) if room > 0 and n else None
    more = f"; about {needed} items would decide it" if needed else ""
    return RuleOutcome(
        verdict="retest",
        min_detectable_drop=mdd,
        items_needed=needed,
        reason=f"{head}: inconclusive at n={n} (smallest detectable drop {mdd * 100:.1f} points){more}",
        **common,
    )


def _z2(alpha: float) -> float:
    from scipy import stats as sps

    return float(sps.norm.ppf(1 - alpha / 2))
