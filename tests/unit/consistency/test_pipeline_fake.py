"""Client and pipeline against a protocol-level FAKE server (the real server is covered in e2e)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cons_fake_server import FakeCompletions, serve

from stackcert.consistency import ConsistencyOptions, run_consistency
from stackcert.consistency.remote import UrlServer
from stackcert.engines.base import ModelRef

MODEL = ModelRef(path=Path("/nonexistent"), tokenizer=Path("/nonexistent"), served_name="fake")


def _opts(tmp_path: Path, **kw: object) -> ConsistencyOptions:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hello"}\n{"prompt": "world"}\n')
    task = tmp_path / "t.jsonl"
    task.write_text('{"prompt": "Q1", "answer": "42"}\n{"prompt": "Q2", "answer": "7"}\n')
    base: dict[str, object] = {"prompts_file": prompts, "sharegpt_texts": 0, "tasks": [str(task)]}
    base.update(kw)
    return ConsistencyOptions.model_validate(base)


def test_self_comparison_passes_and_writes_files(tmp_path: Path) -> None:
    fake = FakeCompletions()
    with serve(fake) as url:
        ref, cand = UrlServer("a", url, "fake"), UrlServer("b", url, "fake")
        res = run_consistency(ref, cand, MODEL, options=_opts(tmp_path), out_dir=tmp_path / "out")
    # Two task items cannot vouch for any accuracy margin: inconclusive (retest), never PASS.
    assert res.status == "retest", res
    assert res.tasks is not None and res.tasks.status == "retest"
    assert res.tokens is not None and res.tokens.status == "pass"
    assert res.logprobs is not None and res.logprobs.status == "pass"
    [finding] = res.findings
    assert finding.category == "tasks_inconclusive" and "items would decide it" in finding.message
    assert res.tokens is not None and res.tokens.summary is not None
    assert res.tokens.summary.identical == 2
    assert res.logprobs is not None and res.logprobs.comparison is not None
    assert res.logprobs.comparison.mean_kl == 0.0 and res.logprobs.comparison.tokens == 10  # 'hello','world'
    assert res.tasks is not None and res.tasks.tasks[0].reference_accuracy == 0.5  # ' 42' right on Q1 only
    for name in ("tokens", "logprobs", "tasks"):
        data = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert data["kind"] == f"consistency.{name}" and "schema_version" in data
    # requests asked for token ids and greedy decoding
    gen = [r for r in fake.requests if not r.get("echo")]
    assert all(r["temperature"] == 0.0 and r["return_tokens_as_token_ids"] for r in gen)


def test_skewed_candidate_fails_logprobs(tmp_path: Path) -> None:
    with serve(FakeCompletions()) as a, serve(FakeCompletions(skew=0.5)) as b:
        res = run_consistency(
            UrlServer("a", a, "fake"),
            UrlServer("b", b, "fake"),
            MODEL,
            options=_opts(tmp_path, phases=["logprobs"]),
            out_dir=tmp_path / "out",
        )
    assert res.logprobs is not None and res.logprobs.status == "fail"
    assert res.logprobs.comparison is not None and res.logprobs.comparison.dlogprob_p99 == pytest.approx(0.5)
    assert res.status == "fail"
    # The failed gate is a located numerics finding naming the metric over its limit.
    [finding] = [f for f in res.findings if f.phase == "logprobs"]
    assert finding.layer.value == "L6" and finding.category == "logprobs_mismatch"
    from stackcert.consistency.tolerance import envelope_for

    limit = 1.5 * envelope_for("bfloat16").mean_kl  # the default margin × the shipped bf16 envelope
    assert "mean_kl 0.46" in finding.message and f"vs limit {limit:.3g}" in finding.message


def test_server_without_logprobs_is_a_clear_finding(tmp_path: Path) -> None:
    with serve(FakeCompletions()) as a, serve(FakeCompletions(logprobs=False)) as b:
        res = run_consistency(
            UrlServer("a", a, "fake"),
            UrlServer("b", b, "fake"),
            MODEL,
            options=_opts(tmp_path),
            out_dir=tmp_path / "out",
        )
    cats = [f.category for f in res.findings]
    assert cats.count("no_logprobs") == 2  # tokens and logprobs phases; no chance-level numbers
    assert res.logprobs is not None and res.logprobs.comparison is None
    assert res.status == "fail"
    # tasks need no log-probs and still run
    assert res.tasks is not None and res.tasks.tasks[0].items == 2
    data = json.loads((tmp_path / "out" / "logprobs.json").read_text())
    assert data["status"] == "fail" and data["findings"][0]["category"] == "no_logprobs"


def test_concurrency_is_bounded_and_parallel(tmp_path: Path) -> None:
    import asyncio
    import time

    from stackcert.consistency.client import gather_bounded

    in_flight = 0
    peak = 0

    async def work(i: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return i * 2

    t0 = time.perf_counter()
    out = asyncio.run(gather_bounded(list(range(16)), work, 4))
    assert out == [i * 2 for i in range(16)]
    assert peak == 4
    assert time.perf_counter() - t0 < 0.05 * 16 / 2  # far faster than one at a time


def test_parse_logprobs_ids_and_strings() -> None:
    from stackcert.consistency.client import NoLogprobs, parse_logprobs

    steps = parse_logprobs(
        {
            "tokens": ["token_id:2", "token_id:9259"],
            "token_logprobs": [None, -6.1],
            "top_logprobs": [None, {"token_id:9259": -6.1, "token_id:184": -2.4}],
        },
        "x",
    )
    assert [s.token for s in steps] == ["id:2", "id:9259"]
    assert steps[0].logprob is None and steps[1].top == {"id:9259": -6.1, "id:184": -2.4}
    # servers that name tokens by their text keep the text as the key
    assert (
        parse_logprobs({"tokens": [" a"], "token_logprobs": [-1.0], "top_logprobs": [{" a": -1.0}]}, "x")[
            0
        ].token
        == " a"
    )
    with pytest.raises(NoLogprobs):
        parse_logprobs(None, "x")
