"""Paired statistics against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from stackcert.consistency.stats import (
    PairedCounts,
    RuleSettings,
    flagrelease_rules,
    mcnemar,
    newcombe_paired_ci,
    wald_paired_ci,
    wilson,
)


def test_mcnemar_exact_small_counts() -> None:
    # b=12, c=2: p = 2 * P(X <= 2), X ~ Bin(14, 1/2) = 2 * (1 + 14 + 91) / 2**14
    res = mcnemar(12, 2)
    assert res.method == "exact"
    assert res.p_value == pytest.approx(2 * 106 / 2**14)


def test_mcnemar_exact_symmetric_is_one() -> None:
    assert mcnemar(3, 3).p_value == 1.0
    assert mcnemar(0, 0).method == "none"


def test_mcnemar_chi_square_with_continuity() -> None:
    # b=20, c=10: (|20-10|-1)^2 / 30 = 81/30 = 2.7; chi2(1) sf(2.7) = erfc(sqrt(1.35))
    res = mcnemar(20, 10)
    assert res.method == "chi2_cc"
    assert res.statistic == pytest.approx(2.7)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(2.7 / 2)))


def test_wilson_hand_case() -> None:
    # 48/50, z=1.96: centre=(0.96+0.038415)/1.076829, half=1.96*sqrt(0.96*0.04/50+0.000384)/1.076829
    lo, hi = wilson(48, 50)
    assert lo == pytest.approx(0.8654, abs=1e-4)
    assert hi == pytest.approx(0.9890, abs=1e-4)


def test_newcombe_paired_hand_case() -> None:
    # a=36 b=12 c=2 d=0 (n=50): p_ref=.96, p_cand=.76, phi=-24/sqrt(48*2*38*12)=-0.11471.
    # Wilson(48/50)=(.86539,.98896), Wilson(38/50)=(.62573,.85666):
    # delta=sqrt(.09461^2+2*.11471*.09461*.09666+.09666^2)=.14305 -> ref-cand CI low .05695
    counts = PairedCounts(both_right=36, ref_only=12, cand_only=2, both_wrong=0)
    lo, hi = newcombe_paired_ci(counts)
    assert -hi == pytest.approx(0.0569, abs=5e-4)
    assert lo < -0.2 < hi  # the point estimate cand-ref = -0.2 lies inside
    assert -1 <= lo <= hi <= 1


def test_newcombe_stays_in_range_at_the_edges() -> None:
    lo, hi = newcombe_paired_ci(PairedCounts(both_right=10, ref_only=0, cand_only=0, both_wrong=0))
    assert lo <= 0 <= hi and lo >= -1 and hi <= 1


def test_wald_paired_hand_case() -> None:
    # b=12 c=2 n=50: delta=-0.2, se=sqrt(14-100/50)/50=sqrt(12)/50
    lo, hi = wald_paired_ci(PairedCounts(both_right=36, ref_only=12, cand_only=2, both_wrong=0))
    se = math.sqrt(12) / 50
    assert lo == pytest.approx(-0.2 - 1.959963984540054 * se)
    assert hi == pytest.approx(-0.2 + 1.959963984540054 * se)


def _counts(n: int, ref_right: int, cand_right: int) -> PairedCounts:
    # candidate loses items only where the reference was right: concordant otherwise
    lost = ref_right - cand_right
    return PairedCounts(both_right=cand_right, ref_only=lost, cand_only=0, both_wrong=n - ref_right)


def test_rules_noise_zone_two_items_of_100_is_retest() -> None:
    out = flagrelease_rules(_counts(100, 30, 28))  # 2 points but 6.7 % relative: would fail
    assert out.verdict == "retest"


def test_rules_three_items_of_100_is_judged() -> None:
    assert flagrelease_rules(_counts(100, 30, 27)).verdict == "fail"


def test_rules_101_items_is_judged() -> None:
    assert flagrelease_rules(_counts(101, 30, 28)).verdict == "fail"


def test_rules_pass_at_exactly_five_percent() -> None:
    # 100 -> 95 of 100: 5 points absolute and 5 % relative, both at the limit
    assert flagrelease_rules(_counts(100, 100, 95)).verdict == "pass"
    assert flagrelease_rules(_counts(200, 200, 189)).verdict == "fail"  # 5.5 points


def test_rules_improvement_passes_and_settings_apply() -> None:
    up = PairedCounts(both_right=30, ref_only=0, cand_only=10, both_wrong=60)
    assert flagrelease_rules(up).verdict == "pass"
    strict = RuleSettings(max_abs_drop=0.0, max_rel_drop=0.0, noise_items=0)
    assert flagrelease_rules(_counts(100, 50, 49), strict).verdict == "fail"


def test_paired_counts_from_items() -> None:
    c = PairedCounts.from_items([True, True, False, False], [True, False, True, False])
    assert (c.both_right, c.ref_only, c.cand_only, c.both_wrong, c.n) == (1, 1, 1, 1, 4)
