"""Paired statistics against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from stackcert.consistency.stats import (
    PairedCounts,
    RuleSettings,
    decide_accuracy,
    mcnemar,
    min_detectable_drop,
    newcombe_paired_ci,
    tango_paired_ci,
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


def test_tango_ci_with_no_discordant_pair_is_z2_over_n_plus_z2() -> None:
    lo, hi = tango_paired_ci(_counts(40, 17, 17))
    assert hi == pytest.approx(3.8415 / (40 + 3.8415), rel=1e-3) and lo == pytest.approx(-hi)


def test_tango_ci_contains_the_estimate_and_is_close_to_newcombe() -> None:
    counts = PairedCounts(both_right=36, ref_only=12, cand_only=2, both_wrong=0)
    lo, hi = tango_paired_ci(counts)
    nlo, nhi = newcombe_paired_ci(counts)
    assert lo < -0.2 < hi and abs(lo - nlo) < 0.02 and abs(hi - nhi) < 0.02


def test_identical_answers_on_few_items_are_inconclusive_not_pass() -> None:
    # 40 identical answers cannot vouch for a drop under the 2-point margin (42 % accuracy): no PASS.
    out = decide_accuracy(_counts(40, 17, 17))
    assert out.verdict == "retest" and out.items_needed and out.items_needed > 40
    assert out.min_detectable_drop > out.margin
    assert decide_accuracy(_counts(400, 170, 170)).verdict == "pass"


def test_a_large_drop_fails_and_a_small_sample_of_it_is_inconclusive() -> None:
    assert decide_accuracy(_counts(100, 60, 40)).verdict == "fail"
    assert decide_accuracy(_counts(20, 10, 9)).verdict == "retest"


def test_margin_is_the_tighter_of_the_two_flagrelease_limits() -> None:
    assert decide_accuracy(_counts(400, 380, 380)).margin == pytest.approx(0.0475)
    assert decide_accuracy(_counts(400, 100, 100)).margin == pytest.approx(0.0125)
    strict = RuleSettings(max_abs_drop=0.01, max_rel_drop=1.0)
    assert decide_accuracy(_counts(400, 380, 380), strict).margin == pytest.approx(0.01)


def test_improvement_passes() -> None:
    up = PairedCounts(both_right=300, ref_only=0, cand_only=40, both_wrong=60)
    assert decide_accuracy(up).verdict == "pass"


def test_min_detectable_drop_solves_connors_formula() -> None:
    d = min_detectable_drop(200, 0.1)
    za, zb = 1.959963984540054, 0.8416212335729143
    n = (za * math.sqrt(0.1) + zb * math.sqrt(0.1 - d * d)) ** 2 / (d * d)
    assert n == pytest.approx(200, rel=1e-3)
    assert min_detectable_drop(800, 0.1) < d
