"""Batched teacher-forced scoring for the transformers engine (`engine_args: {batch_size: N}`).

Concurrent scoring requests (echo + logprobs, one generated token) are gathered for a moment and
run as one right-padded forward pass: the same model computed with other batching (other matmul
shapes, padding), the transformers counterpart of vLLM's batching for the equivalence panel. The
one generated token is the greedy token of the last prompt position of the same pass.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stackcert.engines.hf_core import HFModel, Step

ScoreResult = tuple[list[Step | None], Step]


def score_batch(model: HFModel, batch: list[list[int]], top: int) -> list[ScoreResult]:
    """One padded forward over several prompts: each prompt's steps and its greedy next token."""
    import torch

    width = max(len(ids) for ids in batch)
    pad = model.tokenizer.pad_token_id or 0
    inp = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
    with torch.inference_mode():
        logp = torch.log_softmax(model.model(input_ids=inp, attention_mask=mask).logits.float(), dim=-1)
    out: list[ScoreResult] = []
    for row, ids in zip(logp, batch, strict=True):
        steps: list[Step | None] = [None]
        for pos in range(1, len(ids) + 1):
            dist = row[pos - 1]
            tid = ids[pos] if pos < len(ids) else int(torch.argmax(dist).item())
            tops: dict[int, float] = {}
            if top > 0:
                vals, idx = torch.topk(dist, top)
                tops = {int(i): float(v) for i, v in zip(idx.tolist(), vals.tolist(), strict=True)}
            steps.append(Step(tid, float(dist[tid].item()), tops))
        nxt = steps.pop()
        assert nxt is not None
        out.append((steps, nxt))
    return out


class ScoreBatcher:
    """Gathers concurrent scoring jobs into batches of at most `size`, one batch at a time."""

    def __init__(self, model: HFModel, lock: asyncio.Lock, size: int, wait_s: float = 0.005) -> None:
        self.model, self.lock, self.size, self.wait_s = model, lock, size, wait_s
        self.pending: list[tuple[list[int], int, asyncio.Future[ScoreResult]]] = []
        self.draining = False
        self.batches: list[int] = []  # sizes of the batches run, for the log and the tests

    async def score(self, ids: list[int], top: int) -> ScoreResult:
        """Score one prompt (with its greedy next token) in whatever batch it lands in."""
        fut: asyncio.Future[ScoreResult] = asyncio.get_running_loop().create_future()
        self.pending.append((ids, top, fut))
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self.pending:
                await asyncio.sleep(self.wait_s)  # let the other requests of a burst arrive
                batch, self.pending = self.pending[: self.size], self.pending[self.size :]
                top = max(t for _, t, _ in batch)
                try:
                    async with self.lock:
                        results: Any = await asyncio.get_running_loop().run_in_executor(
                            None, score_batch, self.model, [ids for ids, _, _ in batch], top
                        )
                except Exception as exc:  # the requests of this batch fail; the server goes on
                    for _, _, fut in batch:
                        fut.set_exception(exc)
                    continue
                self.batches.append(len(batch))
                for (_, t, fut), (steps, nxt) in zip(batch, results, strict=True):
                    fut.set_result(([s and _trim(s, t) for s in steps], _trim(nxt, t)))
        finally:
            self.draining = False


def _trim(step: Step, top: int) -> Step:
    """Keep the step's `top` best alternatives (the batch ran with the largest request's top)."""
    best = sorted(step.top.items(), key=lambda kv: -kv[1])[:top]
    return Step(step.token_id, step.logprob, dict(best))
