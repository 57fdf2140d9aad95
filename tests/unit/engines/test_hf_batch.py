"""Batched scoring of the transformers engine on a tiny random model (no checkpoint, no server)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import torch

from stackcert.engines.hf_batch import ScoreBatcher, score_batch
from stackcert.engines.hf_core import HFModel


@pytest.fixture(scope="module")
def tiny() -> HFModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    m = HFModel.__new__(HFModel)
    m.model = LlamaForCausalLM(cfg).eval()
    m.tokenizer = SimpleNamespace(pad_token_id=0)
    m.eos_ids = {63}
    return m


PROMPTS = [[1, 5, 9, 13, 7], [1, 22, 3], [1, 40, 41, 42, 43, 44, 45, 46]]


def test_a_padded_batch_scores_each_prompt_like_one_at_a_time(tiny: HFModel) -> None:
    batched = score_batch(tiny, PROMPTS, top=5)
    for ids, (steps, nxt) in zip(PROMPTS, batched, strict=True):
        alone = tiny.score_prompt(ids, 5)
        assert len(steps) == len(ids) and steps[0] is None
        for a, b in zip(alone[1:], steps[1:], strict=True):
            assert a is not None and b is not None and a.token_id == b.token_id
            assert b.logprob == pytest.approx(a.logprob, abs=1e-4)  # same model, other batching
        [first] = list(tiny.generate(ids, 1, top_logprobs=5))
        assert nxt.token_id == first.token_id and len(nxt.top) == 5


def test_concurrent_requests_share_one_batch_and_keep_their_own_top(tiny: HFModel) -> None:
    async def go() -> tuple[list[int], list[int]]:
        batcher = ScoreBatcher(tiny, asyncio.Lock(), size=8)
        res = await asyncio.gather(
            *(batcher.score(ids, top) for ids, top in zip(PROMPTS, (1, 3, 5), strict=True))
        )
        return batcher.batches, [len(nxt.top) for _, nxt in res]

    batches, tops = asyncio.run(go())
    assert batches == [3] and tops == [1, 3, 5]
