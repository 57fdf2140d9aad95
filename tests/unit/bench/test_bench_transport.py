"""The benchmark's own HTTP/1.1 transport: kernel arrival stamps, turnstiles, keep-alive reuse."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.fakes.openai_stream import FakeBehaviour, FakeOpenAIServer

from stackcert.bench import transport
from stackcert.bench.client import ClientConfig, RequestSpec, make_session, send_request
from stackcert.bench.records import RequestRecord
from stackcert.bench.transport import StreamPool, Turnstile, bench_loop


def _stream_while_the_loop_is_blocked(srv: FakeOpenAIServer) -> RequestRecord:
    """Chunks every 100 ms (first at 50 ms); the client's loop is frozen from 110 to 190 ms, so the
    chunk sent at ~150 ms is read only at ~190 ms."""
    cfg = ClientConfig(base_url=srv.base_url, model="fake-model", timeout_s=10)

    async def go() -> RequestRecord:
        async with make_session(cfg, 1) as pool:
            asyncio.get_running_loop().call_later(0.11, time.sleep, 0.08)
            return await send_request(pool, cfg, RequestSpec("a b c", 3, 4), RequestRecord(index=0))

    with asyncio.Runner(loop_factory=bench_loop) as runner:
        return runner.run(go())


def _server_gaps(srv: FakeOpenAIServer) -> list[float]:
    t = srv.token_sent_at
    return [b - a for a, b in itertools.pairwise(t)]


@pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPNS is Linux's")
def test_kernel_stamps_keep_the_real_spacing_while_the_loop_is_busy() -> None:
    with FakeOpenAIServer(FakeBehaviour(ttft_s=0.05, itl_s=0.1)) as srv:
        rec = _stream_while_the_loop_is_blocked(srv)
        sent = _server_gaps(srv)
    assert rec.success, rec.error
    # Measured against when the server really sent each chunk (a loaded machine delays the fake
    # server too): the client's gaps follow the wire, not its frozen loop.
    assert len(rec.itl) == len(sent)
    assert all(abs(gap - s) < 0.015 for gap, s in zip(rec.itl, sent, strict=True)), (rec.itl, sent)


@pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPNS is Linux's")
def test_without_kernel_stamps_the_busy_loop_shows_in_the_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control of the test above: stamped at the read, the frozen loop distorts the gaps."""
    monkeypatch.setattr(transport, "SO_TIMESTAMPNS", 9999)  # not an option: setsockopt fails
    with FakeOpenAIServer(FakeBehaviour(ttft_s=0.05, itl_s=0.1)) as srv:
        rec = _stream_while_the_loop_is_blocked(srv)
        sent = _server_gaps(srv)
    assert rec.success, rec.error
    assert max(abs(gap - s) for gap, s in zip(rec.itl, sent, strict=True)) > 0.025, (rec.itl, sent)


def test_kernel_stamps_are_used_on_linux() -> None:
    async def go() -> transport.StreamResponse:
        with FakeOpenAIServer(FakeBehaviour(ttft_s=0.0, itl_s=0.001)) as srv:
            async with StreamPool(srv.base_url, 1) as pool:
                body = b'{"model": "fake-model", "prompt": "x", "max_tokens": 3, "stream": true}'
                return await pool.post(pool.request_bytes("/v1/completions", body), 10)

    resp = asyncio.run(go())
    assert resp.status == 200 and resp.complete
    stamps = [t for t, line in zip(resp.stamps, resp.lines, strict=True) if line.startswith(b"data:")]
    assert len(stamps) == 5 and stamps == sorted(stamps) and stamps[0] >= resp.sent
    if sys.platform == "linux":
        assert resp.kernel_stamps >= 1


def test_turnstile_admits_one_waiter_per_loop_iteration() -> None:
    async def go() -> list[int]:
        loop = asyncio.get_running_loop()
        ticks = [0]

        def tick() -> None:  # counts event-loop iterations
            ticks[0] += 1
            loop.call_soon(tick)

        loop.call_soon(tick)
        gate = Turnstile()
        admitted: list[int] = []

        async def waiter() -> None:
            await gate.turn()
            admitted.append(ticks[0])

        await asyncio.gather(*(waiter() for _ in range(6)))
        return admitted

    admitted = asyncio.run(go())
    assert len(admitted) == 6 and len(set(admitted)) == 6 and admitted == sorted(admitted)


async def _closing_server(
    connections: list[int], ssl_context: ssl.SSLContext | None = None
) -> asyncio.Server:
    """Answers one request per connection with keep-alive headers, then closes it anyway (as a
    server whose keep-alive timer expired): the client's next request meets a dead connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
        )
        await reader.readexactly(length)
        event = b'data: {"choices":[{"index":0,"text":" ok","finish_reason":"length"}]}\n\ndata: [DONE]\n\n'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
            % (len(event), event)
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)


async def _one_request(server: asyncio.Server, scheme: str = "http", max_tokens: int = 1) -> RequestRecord:
    """One streaming request to a raw test server (closed with the call)."""
    port = server.sockets[0].getsockname()[1]
    cfg = ClientConfig(base_url=f"{scheme}://127.0.0.1:{port}", model="m", timeout_s=10)
    async with server, make_session(cfg, 1) as pool:
        return await send_request(pool, cfg, RequestSpec("x", 1, max_tokens), RequestRecord(index=0))


def test_a_connection_closed_while_idle_is_retried_on_a_new_one() -> None:
    connections: list[int] = []

    async def go() -> list[RequestRecord]:
        server = await _closing_server(connections)
        port = server.sockets[0].getsockname()[1]
        cfg = ClientConfig(base_url=f"http://127.0.0.1:{port}", model="m", timeout_s=10)
        recs = []
        async with server, make_session(cfg, 1) as pool:
            for i in range(2):
                recs.append(await send_request(pool, cfg, RequestSpec("x", 1, 1), RequestRecord(index=i)))
                await asyncio.sleep(0.2)  # the server closes the idle connection meanwhile
        return recs

    recs = asyncio.run(go())
    assert [r.success for r in recs] == [True, True], [r.error for r in recs]
    assert len(connections) == 2


def test_timeout_keeps_what_arrived() -> None:
    with FakeOpenAIServer(FakeBehaviour(ttft_s=0.0, itl_s=0.2)) as srv:
        cfg = ClientConfig(base_url=srv.base_url, model="fake-model", timeout_s=0.5)

        async def go() -> RequestRecord:
            async with make_session(cfg, 1) as pool:
                return await send_request(pool, cfg, RequestSpec("a", 1, 20), RequestRecord(index=0))

        rec = asyncio.run(go())
    assert not rec.success and "timed out after 0.5 s" in (rec.error or "")
    assert rec.http_status == 200 and 1 <= len(rec.chunk_times) <= 4 and rec.ttft > 0


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_endpoint_streams_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts it as it would a company CA

    async def go() -> RequestRecord:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        return await _one_request(await _closing_server([], ssl_context=server_ctx), "https")

    rec = asyncio.run(go())
    assert rec.success, rec.error
    assert rec.generated_text == " ok" and len(rec.chunk_times) == 1


def test_a_body_ended_by_closing_the_connection_is_complete() -> None:
    """No Content-Length, no chunked encoding: the server ends the SSE body by closing (HTTP/1.0 style)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        for word in (b" a", b" b"):
            writer.write(b'data: {"choices":[{"index":0,"text":"%s","finish_reason":null}]}\n\n' % word)
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        writer.close()

    async def go() -> RequestRecord:
        return await _one_request(await asyncio.start_server(handle, "127.0.0.1", 0), max_tokens=2)

    rec = asyncio.run(go())
    assert rec.success, rec.error
    assert rec.generated_text == " a b" and len(rec.chunk_times) == 2
