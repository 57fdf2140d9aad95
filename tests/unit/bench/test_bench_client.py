"""The streaming client and the bench runner against the FAKE OpenAI server (protocol level)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.fakes.openai_stream import FakeBehaviour, FakeOpenAIServer
from tests.fakes.tokenizer import FakeWordTokenizer

from stackcert.bench.client import ClientConfig, RequestSpec, make_session, send_request
from stackcert.bench.datasets import fill_output_tokens
from stackcert.bench.profiles import Profile, ScaleLimits
from stackcert.bench.records import RequestRecord
from stackcert.bench.runner import load_records, run_bench


def _send(
    server: FakeOpenAIServer,
    n: int = 1,
    *,
    endpoint: str = "completions",
    max_tokens: int = 8,
    continuous: bool = True,
) -> list[RequestRecord]:
    cfg = ClientConfig(
        base_url=server.base_url,
        model="fake-model",
        endpoint=endpoint,  # type: ignore[arg-type]
        continuous_usage=continuous,
        timeout_s=10,
    )

    async def go() -> list[RequestRecord]:
        async with make_session(cfg, 4) as s:
            return await asyncio.gather(
                *(
                    send_request(s, cfg, RequestSpec("a b c", 3, max_tokens), RequestRecord(index=i))
                    for i in range(n)
                )
            )

    return asyncio.run(go())


def test_completion_stream_timings_and_usage() -> None:
    with FakeOpenAIServer(FakeBehaviour(ttft_s=0.05, itl_s=0.01)) as srv:
        [rec] = _send(srv, max_tokens=6)
        body = srv.bodies[0]
    assert rec.success, rec.error
    assert body["ignore_eos"] is True and body["stream_options"]["include_usage"] is True
    assert len(rec.chunk_times) == 6 and rec.chunk_tokens == [1] * 6
    assert rec.output_tokens == 6 and rec.token_source == "usage"
    assert rec.ttft >= 0.05
    assert min(rec.itl) >= 0.009
    assert rec.latency - rec.ttft == pytest.approx(sum(rec.itl))
    assert rec.generated_text.startswith(" alpha beta")


def test_chat_role_only_first_chunk_is_not_the_first_token() -> None:
    with FakeOpenAIServer(FakeBehaviour(ttft_s=0.2, itl_s=0.001)) as srv:
        [rec] = _send(srv, endpoint="chat", max_tokens=3)
    assert rec.success, rec.error
    assert len(rec.chunk_times) == 3
    assert rec.ttft >= 0.2  # the role chunk came at once; the clock stopped at the first content


def test_multi_token_chunks_are_counted_per_token() -> None:
    with FakeOpenAIServer(FakeBehaviour(tokens_per_chunk=3, itl_s=0.01)) as srv:
        [rec] = _send(srv, max_tokens=10)
    assert rec.chunk_tokens == [3, 3, 3, 1]
    assert rec.output_tokens == 10
    assert len(rec.itl) == 3 and len(rec.itl_per_token) == 7
    assert sum(rec.itl_per_token) == pytest.approx(sum(rec.itl))


def test_missing_usage_falls_back_to_tokenizer_and_flags_disagreement() -> None:
    with FakeOpenAIServer(FakeBehaviour(send_usage=False, tokens_per_chunk=2)) as srv:
        [rec] = _send(srv, max_tokens=6, continuous=False)
    assert rec.success and rec.usage_output_tokens is None
    assert rec.output_tokens == 3 and rec.token_source == "chunks"  # without a tokenizer: one per chunk
    fill_output_tokens([rec], FakeWordTokenizer())
    assert rec.output_tokens == 6 and rec.token_source == "tokenizer"
    other = rec.model_copy(update={"usage_output_tokens": 5, "token_mismatch": False})
    fill_output_tokens([other], FakeWordTokenizer())
    assert other.token_mismatch and other.tokenizer_output_tokens == 6 and other.output_tokens == 5


def test_malformed_lines_and_http_errors_are_counted_not_raised() -> None:
    with FakeOpenAIServer(FakeBehaviour(malformed_every=2, http_error_every=3, itl_s=0.0)) as srv:
        recs = _send(srv, n=6, max_tokens=4)
    failed = [r for r in recs if not r.success]
    assert any("malformed SSE line" in (r.error or "") and r.malformed_lines == 1 for r in failed)
    assert any(r.http_status == 500 and "fake overload" in (r.error or "") for r in failed)
    assert any(r.success for r in recs)


def test_unreachable_server_gives_error_records() -> None:
    cfg = ClientConfig(base_url="http://127.0.0.1:9", model="m", timeout_s=5)

    async def go() -> RequestRecord:
        async with make_session(cfg, 1) as s:
            return await send_request(s, cfg, RequestSpec("x", 1, 2), RequestRecord(index=0))

    rec = asyncio.run(go())
    assert not rec.success and rec.http_status is None and "Connect" in (rec.error or "")


def _tiny(**kw: object) -> Profile:
    base: dict[str, object] = dict(
        name="tiny", input_len=8, output_len=4, num_prompts=12, concurrency=[2], warmup=1
    )
    base.update(kw)
    return Profile.model_validate(base)


def test_run_bench_writes_records_and_summary(tmp_path: Path) -> None:
    with FakeOpenAIServer(FakeBehaviour(ttft_s=0.01, itl_s=0.002)) as srv:
        res = run_bench(
            srv,
            FakeWordTokenizer(),
            [_tiny(repeats=2, discard_first=True)],
            out_dir=tmp_path,
            limits=ScaleLimits(),
        )
    assert res.status == "pass", res.reason
    [point] = res.points
    assert [r.discarded for r in point.runs] == [True, False]
    m = point.kept()[0]
    assert m.completed == 12 and m.total_output == 48 and m.total_input == 12 * 3
    recs = load_records(tmp_path / "requests.jsonl")
    assert len(recs) == 1 + 2 * 12 and sum(r.warmup for r in recs) == 1


def test_server_dying_mid_benchmark_keeps_records_and_marks_crash(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with FakeOpenAIServer(FakeBehaviour(die_after=6, itl_s=0.001), log_path=log) as srv:
        res = run_bench(
            srv,
            FakeWordTokenizer(),
            [_tiny(concurrency=[1, 2])],
            out_dir=tmp_path / "b",
            limits=ScaleLimits(),
        )
    assert res.status == "crash"
    assert "stopped answering" in res.reason
    assert res.log_excerpt and "FATAL: fake engine core died" in res.log_excerpt
    recs = load_records(tmp_path / "b" / "requests.jsonl")
    assert sum(r.success for r in recs) == 6  # 1 warm-up + 5 measured before it died
    assert any(not r.success for r in recs)
    assert len(res.points) == 1  # it stopped at the point where the server died


def test_open_loop_rate_records_intended_times(tmp_path: Path) -> None:
    with FakeOpenAIServer(FakeBehaviour(ttft_s=0.005, itl_s=0.001)) as srv:
        res = run_bench(
            srv.base_url,
            FakeWordTokenizer(),
            [_tiny(concurrency=[1], request_rate=[50.0], warmup=0)],
            out_dir=tmp_path,
            limits=ScaleLimits(),
        )
    assert res.status == "pass", res.reason
    m = res.points[0].kept()[0]
    assert m.completed == 12
    # Every send's delay behind its intended time is recorded (never negative: nothing goes out early).
    # How small it is depends on the machine's load, which a unit test cannot promise; < 1 s catches
    # a scheduler that waits for responses instead of the clock.
    assert m.send_delay_ms.count == 12 and m.send_delay_ms.min >= 0 and m.send_delay_ms.max < 1000
    assert 12 / 50 * 0.3 < m.duration_s < 5
