"""KL estimator and teacher-forced comparison on hand-made distributions."""

from __future__ import annotations

import math

import pytest

from stackcert.consistency.client import Scored, TokenStep
from stackcert.consistency.logprobs import LogprobThresholds, compare_scores, judge, kl_topk


def lp(p: float) -> float:
    return math.log(p)


def test_kl_identical_is_zero() -> None:
    top = {"a": lp(0.7), "b": lp(0.2)}
    assert kl_topk(top, dict(top)) == pytest.approx(0.0, abs=1e-12)


def test_kl_same_support_matches_closed_form() -> None:
    # categories a, b, tail: p=(.7,.2,.1), q=(.6,.3,.1)
    p = {"a": lp(0.7), "b": lp(0.2)}
    q = {"a": lp(0.6), "b": lp(0.3)}
    want = 0.7 * math.log(0.7 / 0.6) + 0.2 * math.log(0.2 / 0.3)
    assert kl_topk(p, q) == pytest.approx(want, rel=1e-9)


def test_kl_missing_token_is_imputed_from_the_tail() -> None:
    # q did not list "b": it gets min(smallest listed .3, tail .1/2 = .05); tail keeps .05
    p = {"a": lp(0.7), "b": lp(0.2)}
    q = {"a": lp(0.6), "c": lp(0.3)}
    # categories a,b,c,tail. p: .7,.2, c imputed min(.2, .1/2)=.05, tail .05; q: .6, .05, .3, .05
    want = 0.7 * math.log(0.7 / 0.6) + 0.2 * math.log(0.2 / 0.05) + 0.05 * math.log(0.05 / 0.3)
    assert kl_topk(p, q) == pytest.approx(want, rel=1e-9)
    assert kl_topk(p, q) > 0


def steps(vals: list[tuple[str, float, dict[str, float]]]) -> list[TokenStep]:
    return [TokenStep(token=t, logprob=v, top=top) for t, v, top in vals]


def test_compare_scores_agreement_and_deltas() -> None:
    ref = Scored(
        text="x", steps=steps([("a", -0.1, {"a": -0.1, "b": -2.5}), ("b", -1.0, {"c": -0.5, "b": -1.0})])
    )
    cand = Scored(
        text="x", steps=steps([("a", -0.3, {"a": -0.3, "b": -1.5}), ("b", -1.0, {"b": -0.4, "c": -1.2})])
    )
    st = compare_scores([ref], [cand])
    assert st.tokens == 2
    assert st.top1_agreement == 0.5  # position 2: argmax c vs b
    assert st.dlogprob_max == pytest.approx(0.2)
    assert st.token_mismatches == 0
    assert st.mean_kl > 0


def test_token_mismatch_is_counted() -> None:
    ref = Scored(text="x", steps=steps([("a", -0.1, {"a": -0.1})]))
    cand = Scored(text="x", steps=steps([("z", -0.1, {"z": -0.1})]))
    assert compare_scores([ref], [cand]).token_mismatches == 1


def test_judge_uses_floor_multiple_with_absolute_minimum() -> None:
    same = Scored(text="x", steps=steps([("a", -0.1, {"a": -0.1, "b": -2.5})]))
    zero = compare_scores([same], [same])
    th = LogprobThresholds(multiple=10, min_mean_kl=1e-3)  # explicit, independent of defaults
    checks = {c.metric: c for c in judge(zero, zero, th)}
    assert checks["mean_kl"].limit == 1e-3 and checks["mean_kl"].ok  # zero floor -> absolute minimum
    noisy_floor = zero.model_copy(update={"mean_kl": 0.01})
    big = zero.model_copy(update={"mean_kl": 0.05})
    assert {c.metric: c for c in judge(big, noisy_floor, th)}["mean_kl"].limit == pytest.approx(0.1)
    assert all(c.ok for c in judge(big, noisy_floor, th))
    assert not {c.metric: c for c in judge(big, zero, th)}["mean_kl"].ok
    fixed = LogprobThresholds(fixed_mean_kl=0.5)
    assert {c.metric: c for c in judge(big, zero, fixed)}["mean_kl"].limit == 0.5
