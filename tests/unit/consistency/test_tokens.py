"""Greedy comparison logic on hand-made sequences."""

from __future__ import annotations

from stackcert.consistency.client import Generation, TokenStep
from stackcert.consistency.tokens import (
    PromptComparison,
    TokenSettings,
    apply_fallback,
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


S = TokenSettings()


def test_first_divergence() -> None:
    assert first_divergence(list("abcd"), list("abxd")) == 2
    assert first_divergence(list("abc"), list("abcde")) is None
    assert first_divergence([], []) is None


def test_identical() -> None:
    r = compare_generations(0, gen(list("abcdef")), gen(list("abcdef")), S)
    assert r.status == "identical" and r.divergence is None and r.matched_tokens == 6


def decided(ref: Generation, cand: Generation, s: TokenSettings = S) -> PromptComparison:
    """The fallback rule's decision (what applies when a server cannot be cross-scored)."""
    return apply_fallback(compare_generations(0, ref, cand, s), s, "test")


def test_divergent_prompts_wait_for_a_judgement() -> None:
    r = compare_generations(0, gen(list("abcdXf")), gen(list("abcdYf")), S)
    assert r.rule == "pending" and r.divergence is not None and r.divergence.position == 4


def test_one_side_ending_early_is_a_divergence_at_its_end() -> None:
    r = compare_generations(0, gen(list("abcdef")), gen(list("abc"), finish="stop"), S)
    assert r.divergence is not None and r.divergence.position == 3
    assert r.divergence.reference_token == "d" and r.divergence.candidate_token is None
    assert "candidate_truncated" in r.flags


def test_fallback_mutual_near_tie_passes() -> None:
    ref = gen(list("abcdXf"), [["a"], ["b"], ["c"], ["d"], ["X", "Y"], ["f"]])
    cand = gen(list("abcdYg"), [["a"], ["b"], ["c"], ["d"], ["Y", "X"], ["g"]])
    r = decided(ref, cand, TokenSettings(tie_margin=1.0))
    assert r.status == "diverged_ok" and r.rule == "top_k_fallback"
    assert r.divergence is not None and r.divergence.position == 4
    assert r.divergence.reference_in_candidate_topk and r.divergence.candidate_in_reference_topk


def test_fallback_outside_topk_fails() -> None:
    ref = gen(list("abcdXf"), [["a"], ["b"], ["c"], ["d"], ["X", "Z"], ["f"]])
    cand = gen(list("abcdYg"), [["a"], ["b"], ["c"], ["d"], ["Y", "X"], ["g"]])
    r = decided(ref, cand)
    assert r.status == "diverged_fail"
    assert r.divergence is not None and not r.divergence.candidate_in_reference_topk


def test_empty_candidate_is_broken_and_flagged() -> None:
    r = decided(gen(list("abc")), gen([], finish="stop"))
    assert r.status == "broken_output"
    assert "candidate_empty" in r.flags


def test_degenerate_candidate() -> None:
    loop = ["x", "y"] * 15
    assert degenerate(loop)
    assert not degenerate(list("abcdefghijklmnopqrstuvwxyz"))
    r = decided(gen(list("abcdefghijklmnopqrstuvwxyzABCD")), gen(loop))
    assert "candidate_degenerate" in r.flags and r.status == "broken_output"
    # the same degeneration on both sides is the model, not the stack
    both = compare_generations(0, gen(loop), gen(loop), S)
    assert both.status == "identical"


def test_summary_counts() -> None:
    rows = [
        compare_generations(0, gen(list("abcd")), gen(list("abcd")), S),
        decided(gen(list("aXcd"), [["a"], ["X"], ["c"], ["d"]]), gen(list("aYcd"))),
    ]
    s = summarise(rows)
    assert (s.prompts, s.identical, s.failed, s.fallback, s.status) == (2, 1, 1, 1, "fail")


def _tie_step(token: str, other: str, gap: float) -> TokenStep:
    return TokenStep(token=token, logprob=-0.5, top={token: -0.5, other: -0.5 - gap})


def test_fallback_near_tie_passes_only_within_the_tie_margin() -> None:
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

    assert decided(*pair(0.125)).status == "diverged_ok"
    assert decided(*pair(0.25)).status == "diverged_fail"
    strict = TokenSettings(tie_margin=0)
    assert decided(*pair(0.04), strict).status == "diverged_fail"
