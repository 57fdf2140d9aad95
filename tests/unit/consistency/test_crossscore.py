"""Cross-scoring decisions on constructed cases, through the real client against fake table models.

Each case builds a candidate "model" from the reference by a hand-made change of its next-token
logits, so the right answer is known: an exact tie followed by a continuation the reference shares
passes; a continuation the reference ranks beyond the limit fails, naming the position; a candidate
that degenerates where the reference does not fails.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.fakes.table_lm import EOS, TRAP, Logits, TableLM, reference_logits, serve, tokenize

from stackcert.consistency.client import CompletionsClient
from stackcert.consistency.options import ConsistencyOptions, TokenPhase
from stackcert.consistency.phases import Sides, tokens_phase
from stackcert.engines.base import ModelRef
from stackcert.progress import NullProgress

PROMPT = "abc"
FIRST = len(tokenize(PROMPT))  # context length at the first generated token


def nudged(at: int, token: int, by: float, base: Logits = reference_logits) -> Logits:
    """base, with `token`'s logit raised by `by` at the generated position `at`."""

    def logits(ctx: list[int]) -> list[float]:
        out = list(base(ctx))
        if len(ctx) == FIRST + at:
            out[token] += by
        return out

    return logits


def first_token() -> int:
    return TableLM().greedy(tokenize(PROMPT))


def run(ref: TableLM, cand: TableLM, tmp_path: Path, **tokens: object) -> TokenPhase:
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": EOS}))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": PROMPT}) + "\n")
    model = ModelRef(path=tmp_path, served_name="m", tokenizer=tmp_path)
    opts = ConsistencyOptions(prompts_file=prompts)
    opts.tokens = opts.tokens.model_copy(update={"max_tokens": 32, **tokens})

    async def go() -> TokenPhase:
        with serve(ref) as ru, serve(cand) as cu:
            async with CompletionsClient(ru, "m") as rc, CompletionsClient(cu, "m") as cc:
                return await tokens_phase(Sides(rc, cc, NullProgress(), 2), model, opts)

    return asyncio.run(go())


def test_exact_tie_then_a_loop_the_reference_shares_passes(tmp_path: Path) -> None:
    # At token 0 the reference's choice and TRAP tie to a hair; each side takes its own. The candidate
    # then repeats TRAP — and so does the reference, fed the same prefix: the model's own behaviour.
    ref = TableLM(nudged(0, TRAP, 8.0 - 1e-6))
    cand = TableLM(nudged(0, TRAP, 8.0 + 1e-6))
    phase = run(ref, cand, tmp_path)
    row = phase.prompts[0]
    assert row.divergence is not None and row.divergence.position == 0
    assert row.divergence.candidate_token == f"id:{TRAP}"
    assert "candidate_degenerate" in row.flags and "reference_degenerate" not in row.flags
    assert row.rule == "cross_score" and row.status == "diverged_ok", row.reason
    j = row.judgement
    assert j is not None and j.candidate_under_reference is not None
    assert j.candidate_under_reference.max_regret < 1e-3  # the reference agrees with every token
    assert phase.status == "pass"


def test_a_continuation_the_reference_ranks_beyond_the_limit_fails(tmp_path: Path) -> None:
    # At token 5 the candidate takes a token the reference gives 8 nats less than its top.
    wrong = 2
    phase = run(TableLM(), TableLM(nudged(5, wrong, 10.0)), tmp_path)
    row = phase.prompts[0]
    assert row.status == "diverged_fail" and row.rule == "cross_score"
    j = row.judgement
    assert j is not None and j.candidate_under_reference is not None
    cur = j.candidate_under_reference
    assert cur.worst_position == 5 and cur.worst_token == f"id:{wrong}"
    assert 7.9 < cur.max_regret < 8.1
    assert "position 5" in row.reason and f"id:{wrong}" in row.reason
    assert phase.status == "fail"


def test_a_near_tie_inside_the_limit_passes_and_one_outside_fails(tmp_path: Path) -> None:
    # The reference's runner-up is 1 nat below its top: a candidate that prefers it costs 1 nat.
    lp = reference_logits([*tokenize(PROMPT), first_token()])
    runner_up = sorted(range(len(lp)), key=lambda i: -lp[i])[1]
    cand = TableLM(nudged(1, runner_up, 1.5))
    assert run(TableLM(), cand, tmp_path, regret_limit=1.2).status == "pass"
    assert run(TableLM(), cand, tmp_path, regret_limit=0.8).status == "fail"


def test_degenerate_candidate_where_the_reference_is_not_fails(tmp_path: Path) -> None:
    phase = run(TableLM(), TableLM(nudged(4, TRAP, 10.0)), tmp_path)
    row = phase.prompts[0]
    assert "candidate_degenerate" in row.flags
    assert row.status == "diverged_fail" and row.rule == "cross_score"
    assert row.judgement is not None and row.judgement.candidate_under_reference is not None
    assert row.judgement.candidate_under_reference.worst_position == 4


def test_a_stop_the_reference_would_not_make_fails(tmp_path: Path) -> None:
    phase = run(TableLM(), TableLM(nudged(3, EOS, 10.0)), tmp_path)
    row = phase.prompts[0]
    assert row.candidate_tokens == 3 and row.status == "diverged_fail"
    cur = row.judgement.candidate_under_reference if row.judgement else None
    assert cur is not None and cur.stop_regret is not None and cur.stop_regret > 7
    assert "ended" in row.reason


def test_without_token_ids_the_fallback_decides_and_says_so(tmp_path: Path) -> None:
    cand = TableLM(nudged(4, TRAP, 10.0), token_ids=False)
    phase = run(TableLM(token_ids=False), cand, tmp_path)
    row = phase.prompts[0]
    assert row.rule == "top_k_fallback" and row.status == "broken_output"
    assert "cross-scoring unavailable" in row.reason
    assert phase.summary is not None and phase.summary.fallback == 1


def test_identical_outputs_are_not_cross_scored(tmp_path: Path) -> None:
    ref, cand = TableLM(), TableLM()
    phase = run(ref, cand, tmp_path)
    assert phase.prompts[0].status == "identical" and phase.status == "pass"
    assert not any(r.get("echo") for r in ref.requests + cand.requests)
