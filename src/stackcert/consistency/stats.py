"""Paired statistics for task accuracy: McNemar, a paired CI of the accuracy difference, FlagRelease rules.

Conventions: items are paired (same item on both stacks). `b` = reference right, candidate wrong;
`c` = reference wrong, candidate right. Δ accuracy is candidate minus reference.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

Verdict = Literal["pass", "fail", "retest"]

# Below this many discordant pairs the chi-square approximation is poor; use the exact binomial test.
EXACT_BELOW = 25


class PairedCounts(BaseModel):
    both_right: int
    ref_only: int  # b
    cand_only: int  # c
    both_wrong: int

    @property
    def n(self) -> int:
        return self.both_right + self.ref_only + self.cand_only + self.both_wrong

    @classmethod
    def from_items(cls, ref: list[bool], cand: list[bool]) -> PairedCounts:
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
    max_abs_drop: float = 0.05  # accuracy points, as a fraction (5 points)
    max_rel_drop: float = 0.05  # of the reference accuracy
    noise_items: int = 2  # a difference of at most this many items ...
    noise_max_n: int = 100  # ... on at most this many items is inside the noise zone


class RuleOutcome(BaseModel):
    verdict: Verdict
    abs_drop: float
    rel_drop: float
    item_diff: int
    reason: str


def flagrelease_rules(counts: PairedCounts, settings: RuleSettings | None = None) -> RuleOutcome:
    """Absolute drop ≤ 5 points and relative drop ≤ 5 % pass; a failing small difference is 'retest'."""
    s = settings or RuleSettings()
    n = counts.n
    ref_right = counts.both_right + counts.ref_only
    cand_right = counts.both_right + counts.cand_only
    item_diff = ref_right - cand_right
    abs_drop = item_diff / n if n else 0.0
    rel_drop = item_diff / ref_right if ref_right else 0.0
    # Compare on whole items with a tolerance so 5/100 == 0.05 exactly is not lost to rounding.
    eps = 1e-12
    ok = abs_drop <= s.max_abs_drop + eps and rel_drop <= s.max_rel_drop + eps
    if ok:
        reason = f"drop {abs_drop * 100:.1f} points ({rel_drop * 100:.1f} % relative) within limits"
        return RuleOutcome(
            verdict="pass", abs_drop=abs_drop, rel_drop=rel_drop, item_diff=item_diff, reason=reason
        )
    if n <= s.noise_max_n and abs(item_diff) <= s.noise_items:
        reason = f"{item_diff} item(s) of {n}: inside the small-sample noise zone, retest with more items"
        return RuleOutcome(
            verdict="retest", abs_drop=abs_drop, rel_drop=rel_drop, item_diff=item_diff, reason=reason
        )
    reason = (
        f"drop {abs_drop * 100:.1f} points ({rel_drop * 100:.1f} % relative) exceeds "
        f"{s.max_abs_drop * 100:.0f} points / {s.max_rel_drop * 100:.0f} %"
    )
    return RuleOutcome(
        verdict="fail", abs_drop=abs_drop, rel_drop=rel_drop, item_diff=item_diff, reason=reason
    )
