"""KL estimator and teacher-forced comparison on hand-made distributions."""

from __future__ import annotations

import math

import pytest

from stackcert.consistency.client import Scored, TokenStep
from stackcert.consistency.logprobs import TokenDiffs, compare_scores, judge, kl_topk, token_diffs
from stackcert.consistency.tolerance import Envelope, ToleranceSettings


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


def _diffs(per_text_kl: list[list[float]]) -> TokenDiffs:
    return TokenDiffs(
        kl=per_text_kl,
        disagree=[[0.0] * len(t) for t in per_text_kl],
        dlogprob=[[0.01] * len(t) for t in per_text_kl],
    )


ENV = Envelope(mean_kl=0.002, top1_disagreement=0.02, dlogprob_p99=0.2, dlogprob_max=0.5, regret=0.5)


def test_judge_passes_inside_the_tolerance_and_fails_beyond_it() -> None:
    settings = ToleranceSettings(margin=1.5, noise_multiple=3.0)
    inside = _diffs([[0.001, 0.0012, 0.0009] for _ in range(12)])
    checks = {c.metric: c for c in judge(inside, None, ENV, settings)}
    kl = checks["mean_kl"]
    assert kl.limit == pytest.approx(0.003) and kl.decision == "pass" and kl.ci_high <= kl.limit
    beyond = _diffs([[0.02, 0.03, 0.025] for _ in range(12)])
    kl = {c.metric: c for c in judge(beyond, None, ENV, settings)}["mean_kl"]
    assert kl.decision == "fail" and kl.ci_low > kl.limit


def test_judge_is_inconclusive_when_the_sample_cannot_tell() -> None:
    # Two texts, one far inside and one far beyond the limit: the bootstrap bounds straddle it.
    mixed = _diffs([[0.0001] * 5, [0.02] * 5])
    kl = {c.metric: c for c in judge(mixed, None, ENV, ToleranceSettings())}["mean_kl"]
    assert kl.ci_low < kl.limit < kl.ci_high and kl.decision == "inconclusive"


def test_judge_limit_follows_the_measured_noise_and_fixed_overrides() -> None:
    noise = _diffs([[0.01] * 4 for _ in range(6)])
    kl = {c.metric: c for c in judge(noise, noise, ENV, ToleranceSettings(noise_multiple=3.0))}["mean_kl"]
    assert kl.noise == pytest.approx(0.01) and kl.limit == pytest.approx(0.03) and kl.decision == "pass"
    fixed = ToleranceSettings(fixed_mean_kl=0.5)
    assert {c.metric: c for c in judge(noise, None, ENV, fixed)}["mean_kl"].limit == 0.5


def test_min_detectable_shrinks_with_more_texts() -> None:
    import random

    rnd = random.Random(0)
    few = _diffs([[rnd.uniform(0, 0.004) for _ in range(4)] for _ in range(4)])
    many = _diffs([[rnd.uniform(0, 0.004) for _ in range(4)] for _ in range(64)])
    s = ToleranceSettings()
    f = {c.metric: c for c in judge(few, None, ENV, s)}["mean_kl"]
    m = {c.metric: c for c in judge(many, None, ENV, s)}["mean_kl"]
    assert m.min_detectable < f.min_detectable


def test_token_diffs_groups_by_text() -> None:
    a = Scored(text="x", steps=steps([("a", -0.1, {"a": -0.1, "b": -2.5}), ("b", -0.2, {"b": -0.2})]))
    b = Scored(text="x", steps=steps([("a", -0.3, {"a": -0.3, "b": -1.5}), ("b", -0.2, {"b": -0.2})]))
    d = token_diffs([a, a], [b, a])
    assert [len(t) for t in d.kl] == [2, 2] and d.kl[1] == [0.0, 0.0] and d.kl[0][0] > 0
    assert d.dlogprob[0][0] == pytest.approx(0.2)
