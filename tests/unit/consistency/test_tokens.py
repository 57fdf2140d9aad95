"""Greedy comparison logic on hand-made sequences."""

from __future__ import annotations

from stackcert.consistency.client import Generation, TokenStep
from stackcert.consistency.tokens import (
    TokenSettings,
    compare_generations,
    degenerate,
    first_divergence,
    summarise,
)


def gen(tokens: list[str], tops: list[list[str]] | None = None, finish: str = "length") -> Generation:
    tops = tops or [[t] for t in tokens]
    steps = [
        TokenStep(token=t, logprob=-0.1, top={k: -0.1 - i for i, k in enumerate(top)})
        for t, top in zip(tokens, tops, strict=True)
    ]
    return Generation(prompt="p", text="".join(tokens), finish_reason=finish, steps=steps)


S = TokenSettings(early_tokens=3)


def test_first_divergence() -> None:
    assert first_divergence(list("abcd"), list("abxd")) == 2
    assert first_divergence(list("abc"), list("abcde")) is None
    assert first_divergence([], []) is None


def test_identical() -> None:
    r = compare_generations(0, gen(list("abcdef")), gen(list("abcdef")), S)
    assert r.status == "identical" and r.divergence is None and r.matched_tokens == 6


def test_late_divergence_within_topk_passes() -> None:
    ref = gen(list("abcdXf"), [["a"], ["b"], ["c"], ["d"], ["X", "Y"], ["f"]])
    cand = gen(list("abcdYg"), [["a"], ["b"], ["c"], ["d"], ["Y", "X"], ["g"]])
    r = compare_generations(0, ref, cand, S)
    assert r.status == "diverged_ok"
    assert r.divergence is not None and r.divergence.position == 4
    assert r.divergence.reference_in_candidate_topk and r.divergence.candidate_in_reference_topk


def test_late_divergence_outside_topk_fails() -> None:
    ref = gen(list("abcdXf"), [["a"], ["b"], ["c"], ["d"], ["X", "Z"], ["f"]])
    cand = gen(list("abcdYg"), [["a"], ["b"], ["c"], ["d"], ["Y", "X"], ["g"]])
    r = compare_generations(0, ref, cand, S)
    assert r.status == "diverged_fail"
    assert r.divergence is not None and not r.divergence.candidate_in_reference_topk


def test_early_divergence_fails_even_within_topk() -> None:
    ref = gen(list("aXcd"), [["a"], ["X", "Y"], ["c"], ["d"]])
    cand = gen(list("aYcd"), [["a"], ["Y", "X"], ["c"], ["d"]])
    assert compare_generations(0, ref, cand, S).status == "early_divergence"
    # position 3 with early_tokens=3 is no longer early
    ref = gen(list("abcXe"), [["a"], ["b"], ["c"], ["X", "Y"], ["e"]])
    cand = gen(list("abcYe"), [["a"], ["b"], ["c"], ["Y", "X"], ["e"]])
    assert compare_generations(0, ref, cand, S).status == "diverged_ok"


def test_empty_candidate_is_broken_and_flagged() -> None:
    r = compare_generations(0, gen(list("abc")), gen([], finish="stop"), S)
    assert r.status == "broken_output"
    assert "candidate_empty" in r.flags


def test_truncated_is_flagged_not_failed() -> None:
    r = compare_generations(0, gen(list("abcdef")), gen(list("abc"), finish="stop"), S)
    assert "candidate_truncated" in r.flags
    assert r.status == "diverged_ok"


def test_degenerate_candidate() -> None:
    loop = ["x", "y"] * 15
    assert degenerate(loop)
    assert not degenerate(list("abcdefghijklmnopqrstuvwxyz"))
    r = compare_generations(0, gen(list("abcdefghijklmnopqrstuvwxyzABCD")), gen(loop), S)
    assert "candidate_degenerate" in r.flags and r.status == "broken_output"
    # the same degeneration on both sides is the model, not the stack
    both = compare_generations(0, gen(loop), gen(loop), S)
    assert both.status == "identical"


def test_summary_counts() -> None:
    rows = [
        compare_generations(0, gen(list("abcd")), gen(list("abcd")), S),
        compare_generations(1, gen(list("aXcd"), [["a"], ["X"], ["c"], ["d"]]), gen(list("aYcd")), S),
    ]
    s = summarise(rows)
    assert (s.prompts, s.identical, s.failed, s.status) == (2, 1, 1, "fail")


def _tie_step(token: str, other: str, gap: float) -> TokenStep:
    return TokenStep(token=token, logprob=-0.5, top={token: -0.5, other: -0.5 - gap})


def test_early_near_tie_passes_only_within_the_tie_margin() -> None:
    def pair(gap: float) -> tuple[Generation, Generation]:
        ref = Generation(
            prompt="p",
            text="aX",
            finish_reason="length",
            steps=[TokenStep(token="a", logprob=-0.1, top={"a": -0.1}), _tie_step("X", "Y", gap)],
        )
        cand = Generation(
            prompt="p",
            text="aY",
            finish_reason="length",
            steps=[TokenStep(token="a", logprob=-0.1, top={"a": -0.1}), _tie_step("Y", "X", gap)],
        )
        return ref, cand

    assert compare_generations(0, *pair(0.125), S).status == "early_near_tie"
    assert compare_generations(0, *pair(0.25), S).status == "early_divergence"
    strict = TokenSettings(early_tokens=3, tie_margin=0)
    assert compare_generations(0, *pair(0.04), strict).status == "early_divergence"
