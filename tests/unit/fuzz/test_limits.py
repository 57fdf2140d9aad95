"""The default limits, and answers the issue measured on main: each ends fast, failed, with a reason."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from tests.fakes.raw_http import Endless, RawFakeServer, Reset, Script
from tests.fakes.tokenizer import FakeWordTokenizer
from tests.unit.fuzz import drivers
from tests.unit.fuzz.corpus import Variation, http, sse, stream_events

from stackcert.answers import LIMITS, mib
from stackcert.bench.client import ClientConfig, RequestSpec, make_session, send_request
from stackcert.bench.profiles import Profile
from stackcert.bench.records import RequestRecord
from stackcert.bench.runner import run_bench
from stackcert.bench.transport import bench_loop
from stackcert.smoke.quality import degenerate

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def _bench(url: str, timeout_s: float) -> RequestRecord:
    cfg = ClientConfig(base_url=url, model="fake-model", timeout_s=timeout_s)

    async def go() -> RequestRecord:
        async with make_session(cfg, 1) as pool:
            return await send_request(pool, cfg, RequestSpec("hi", 1, 16), RequestRecord(index=0))

    with asyncio.Runner(loop_factory=bench_loop) as runner:
        return runner.run(go())


def test_default_stream_cap_stops_an_endless_stream_long_before_the_timeout() -> None:
    chunk = sse([stream_events(Variation())[0]], Variation())
    with RawFakeServer() as fake:
        fake.script = Script([SSE_HEAD, Endless(chunk * 256)])
        started = time.monotonic()
        rec = _bench(fake.base_url, 120)
    assert time.monotonic() - started < 60
    assert not rec.success and f"{mib(LIMITS.stream_body)} limit" in (rec.error or "")


def test_default_line_cap_in_smoke() -> None:
    with RawFakeServer() as fake:
        fake.script = Script([SSE_HEAD, b"data: ", Endless(b"x" * 65536)])
        ok, reason = drivers._smoke("stream", 2)(fake.base_url)
    assert not ok and f"{mib(LIMITS.line)} limit" in reason


def test_a_reset_after_partial_data_fails_at_once_not_at_the_timeout() -> None:
    events = sse(stream_events(Variation())[:1], Variation())
    with RawFakeServer() as fake:
        fake.script = Script([SSE_HEAD, events, Reset()])
        started = time.monotonic()
        rec = _bench(fake.base_url, 60)
    assert time.monotonic() - started < 10
    assert not rec.success and rec.error


def test_done_then_an_open_body_fails_after_the_grace_not_the_timeout() -> None:
    body = sse(stream_events(Variation()), Variation())
    with RawFakeServer() as fake:
        fake.script = Script([SSE_HEAD, body, Endless(b": ping\n\n", every_s=0.2)])
        started = time.monotonic()
        rec = _bench(fake.base_url, 120)
    assert time.monotonic() - started < 30
    assert not rec.success and "after [DONE]" in (rec.error or "")


def test_a_lone_surrogate_is_measured_and_the_record_is_written(tmp_path: Path) -> None:
    v = Variation(usage="none")
    events = stream_events(v)
    body = sse(events, v).replace(b"Paris", b"Par\\ud800is", 1)
    with RawFakeServer() as fake:
        fake.script = Script(http(body, v, ctype="text/event-stream"))
        rec = _bench(fake.base_url, 10)
    assert rec.success, rec.error
    (tmp_path / "r.json").write_text(rec.model_dump_json(), encoding="utf-8")
    assert "\ud800" not in rec.generated_text


@pytest.mark.parametrize("count", [-5, 10**9])
def test_absurd_usage_fails_the_bench_run(tmp_path: Path, count: int) -> None:
    v = Variation(usage="none")
    events = stream_events(v)
    events.insert(-1, {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": count}})
    with RawFakeServer() as fake:
        fake.script_for = lambda method, path: Script(
            http(json.dumps({"data": [{"id": "fake-model"}]}).encode(), v)
            if method == "GET"
            else http(sse(events, v), v, ctype="text/event-stream")
        )
        profile = Profile(name="t", input_len=8, output_len=4, num_prompts=2, concurrency=[1], warmup=0)
        result = run_bench(fake.base_url, FakeWordTokenizer(), [profile], out_dir=tmp_path)
    assert result.status == "fail" and "completion_tokens" in result.reason
    assert (tmp_path / "requests.jsonl").exists()  # the records so far are kept


def test_one_mib_of_one_character_is_judged_fast() -> None:
    started = time.monotonic()
    assert degenerate("x" * (1 << 20))
    assert time.monotonic() - started < 5
