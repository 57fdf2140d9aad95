"""Calibration server: an OpenAI-style completions stream with KNOWN injected delays (no model).

Each request streams `max_tokens` chunks: the first `ttft` seconds after the request arrived, then
one every `itl` seconds, on absolute due times. It logs when each chunk was due and when it was
really written, so a client's timing error can be measured with the server's own lag subtracted.
Every chunk also carries its real send time `ts` (time.perf_counter, CLOCK_MONOTONIC: the same
clock in every process of the host). Raw asyncio, HTTP/1.1 keep-alive, chunked transfer encoding.

Run: python -m stackcert.bench.calibration --port 8099 --ttft 0.05 --itl 0.02
GET /calibration/log returns and clears the log: [[rid, k, due, sent], ...] (rid from "rid=N" in the prompt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from typing import Any

RID = re.compile(r"rid=(\d+)")
TOKEN_CHUNK = b'{"choices":[{"index":0,"text":" tok","finish_reason":%s}],"ts":%.9f}'
USAGE_CHUNK = b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":%d}}'


class Calibration:
    """The injected delays (ttft, itl) and the log of when each chunk was due and really sent."""

    def __init__(self, ttft: float, itl: float) -> None:
        self.ttft, self.itl = ttft, itl
        self.log: list[tuple[int, int, float, float]] = []


class _Conn(asyncio.Protocol):
    def __init__(self, cal: Calibration) -> None:
        self.cal = cal
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        if self.busy or b"\r\n\r\n" not in self.buf:
            return
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if len(rest) < length:
            return
        body, self.buf = rest[:length], rest[length:]
        arrived = time.perf_counter()
        if method == "GET":
            payload: object = {"data": [{"id": "calibration", "max_model_len": 1 << 20}]}
            if path.startswith("/calibration/log"):
                payload, self.cal.log = self.cal.log, []
            self._respond(json.dumps(payload).encode())
            return
        self.busy = True
        asyncio.get_running_loop().create_task(self._stream(json.loads(body), arrived))

    def _respond(self, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        self._next()

    def _chunk(self, data: bytes) -> None:
        """One SSE event in one HTTP chunk (one write, as a real server flushes each token)."""
        event = b"data: " + data + b"\n\n"
        assert self.transport is not None
        self.transport.write(b"%x\r\n%s\r\n" % (len(event), event))

    async def _stream(self, req: dict[str, Any], arrived: float) -> None:
        assert self.transport is not None
        m = RID.search(str(req.get("prompt", "")))
        rid = int(m.group(1)) if m else -1
        n = int(req.get("max_tokens", 16))
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        loop = asyncio.get_running_loop()
        for k in range(n):
            due = arrived + self.cal.ttft + k * self.cal.itl
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.transport.is_closing():
                return
            sent = time.perf_counter()
            # formatted, not json.dumps'd: the server's own cost per chunk stays small and steady
            self._chunk(TOKEN_CHUNK % (b"null" if k < n - 1 else b'"length"', sent))
            self.cal.log.append((rid, k, due, sent))
        self._chunk(USAGE_CHUNK % n)
        self._chunk(b"[DONE]")
        self.transport.write(b"0\r\n\r\n")
        self.busy = False
        loop.call_soon(self._next)


async def serve(host: str, port: int, ttft: float, itl: float) -> None:
    """Run the calibration server on host:port until cancelled."""
    cal = Calibration(ttft, itl)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(cal), host, port, backlog=4096)
    print(f"calibration server listening on http://{host}:{port} (ttft {ttft} s, itl {itl} s)", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Command line: start the calibration server with the given port and delays."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--ttft", type=float, default=0.05)
    ap.add_argument("--itl", type=float, default=0.02)
    a = ap.parse_args()
    try:  # libuv's loop where installed: the server's own lag is smaller (and logged either way)
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    run(serve(a.host, a.port, a.ttft, a.itl))


if __name__ == "__main__":
    main()
