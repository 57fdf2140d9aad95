"""Prompt builders: exact token lengths, range ratio, shared prefixes, ShareGPT sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fakes.tokenizer import FakeWordTokenizer

from stackcert.bench import datasets
from stackcert.bench.datasets import count_tokens, prefix_requests, random_requests


def test_random_prompts_have_exact_lengths_and_are_seeded() -> None:
    tok = FakeWordTokenizer()
    reqs = random_requests(tok, 20, 50, 8, seed=3)
    assert all(count_tokens(tok, r.prompt) == r.prompt_len == 50 for r in reqs)
    assert all(r.output_len == 8 for r in reqs)
    again = random_requests(tok, 20, 50, 8, seed=3)
    assert [r.prompt for r in reqs] == [r.prompt for r in again]
    assert [r.prompt for r in reqs] != [r.prompt for r in random_requests(tok, 20, 50, 8, seed=4)]


def test_range_ratio_bounds_lengths() -> None:
    tok = FakeWordTokenizer()
    reqs = random_requests(tok, 200, 100, 20, range_ratio=0.5, seed=0)
    ins = [r.prompt_len for r in reqs]
    assert min(ins) >= 50 and max(ins) <= 150 and len(set(ins)) > 20
    assert all(count_tokens(tok, r.prompt) == r.prompt_len for r in reqs)
    assert all(10 <= r.output_len <= 30 for r in reqs)


def test_prefix_prompts_share_their_prefix() -> None:
    tok = FakeWordTokenizer()
    reqs = prefix_requests(tok, 5, 40, 4, prefix_len=30, seed=1)
    heads = {tuple(tok.encode(r.prompt, special=False)[:30]) for r in reqs}
    assert len(heads) == 1
    assert len({r.prompt for r in reqs}) == 5
    assert all(r.prompt_len == 40 for r in reqs)


def test_sharegpt_sample_is_seeded_cached_and_survives_a_truncated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path / "home"))
    items = [
        {
            "id": str(i),
            "conversations": [
                {"from": "human", "value": f"q{i} " * 5},
                {"from": "gpt", "value": f"a{i} " * 7},
            ],
        }
        for i in range(50)
    ]
    text = json.dumps(items)
    src = tmp_path / "sharegpt.json"
    src.write_text(text[: len(text) - 40])  # cut inside the last conversation, like the packaged file
    pairs = datasets.sharegpt_sample(seed=5, path=src)
    assert len(pairs) == 49
    assert pairs != sorted(pairs)  # shuffled
    src.unlink()
    assert datasets.sharegpt_sample(seed=5, path=src) == pairs  # from the cache
