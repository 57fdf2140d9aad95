"""HTTP/1.1 answers of the benchmark transport: the httptools callbacks of one exchange, with caps.

Every limit of `stackcert.answers.LIMITS` is enforced here while the bytes arrive, so a server that
sends an endless body or an endless line costs at most the cap in memory.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httptools

from stackcert.answers import LIMITS, mib

# After `data: [DONE]` the body must end soon: a server that keeps the stream open after it is
# broken, and waiting for the request timeout would hide that for minutes.
DONE_GRACE_S = 5.0


class TransportError(Exception):
    """The connection failed or broke; `response` holds what had arrived before."""

    def __init__(
        self, message: str, response: StreamResponse | None = None, *, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.response = response
        self.timed_out = timed_out


@dataclass
class StreamResponse:
    """What has arrived of one answer: status, SSE lines with their arrival stamps, or an error body."""

    status: int = 0
    reason: str = ""
    keep_alive: bool = True
    sent: float = 0.0  # when the request was written (time.perf_counter)
    lines: list[bytes] = field(default_factory=list)  # SSE lines ...
    stamps: list[float] = field(default_factory=list)  # ... and their arrival times (no tuples: no GC work)
    body: list[bytes] = field(default_factory=list)  # the body of a non-200 answer
    tail: bytes = b""  # an unterminated last line
    tail_stamp: float = 0.0
    complete: bool = False
    kernel_stamps: int = 0  # reads stamped by the kernel (the others: at the read)
    content_type: str = ""
    size: int = 0  # body bytes received
    done_seen: bool = False  # a `data: [DONE]` line arrived
    body_truncated: bool = False  # a non-200 body longer than LIMITS.error_body (the rest not read)

    @property
    def started(self) -> bool:
        """Whether the status line has been parsed."""
        return self.status != 0


class Exchange:
    """One request/answer at a time on one connection: the httptools callbacks, I/O left to subclasses."""

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.response = StreamResponse()
        self.done: asyncio.Future[StreamResponse] | None = None
        self.closed = False
        self.now = 0.0  # arrival stamp of the bytes being parsed
        self.on_done_line: Any = None  # called once when `data: [DONE]` arrives (post() shortens its wait)
        self._header = b""

    async def exchange(self, request: bytes) -> StreamResponse:
        """Send one request and wait for its whole answer (or a TransportError)."""
        self.response = StreamResponse()
        self.parser = httptools.HttpResponseParser(self)
        self.done = asyncio.get_running_loop().create_future()
        self.response.sent = time.perf_counter()
        await self.send(request)
        return await self.done

    async def send(self, request: bytes) -> None:
        """Write the request bytes to the connection (the subclass's I/O)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close the connection at once (the subclass's I/O)."""
        raise NotImplementedError

    def feed(self, data: bytes, stamp: float) -> None:
        """Parse bytes that arrived at stamp; a protocol error fails the exchange."""
        self.now = stamp
        if self.parser is None:
            return  # bytes outside a request: ignored (the connection is not reused after an error)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail("unexpected protocol upgrade")
        except httptools.HttpParserError as exc:
            self.fail(f"bad HTTP response: {exc}")

    def lost(self, exc: BaseException | None) -> None:
        """The connection closed: fail the exchange if its answer was not complete."""
        self.closed = True
        if self.done is not None and not self.done.done():
            # (a body that the server ends by closing is judged by the client: complete if it had [DONE])
            self.fail(f"server closed the connection{f': {exc}' if exc else ''}")

    def fail(self, message: str) -> None:
        """End the exchange with a TransportError carrying what had arrived, and close the connection."""
        self.parser = None
        if self.done is not None and not self.done.done():
            self.done.set_exception(TransportError(message, self.response))
        self.abort()

    # -- httptools callbacks -------------------------------------------------------------------
    def on_status(self, status: bytes) -> None:
        """httptools: collect the reason phrase (it stops growing past 200 characters)."""
        if len(self.response.reason) < 200:
            self.response.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools: keep the Content-Type header."""
        if name.lower() == b"content-type":
            self.response.content_type = value.decode("latin-1")[:100]

    def on_headers_complete(self) -> None:
        """httptools: record the status code and whether the connection can be reused."""
        assert self.parser is not None
        self.response.status = self.parser.get_status_code()
        self.response.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        """httptools: split a body piece into stamped SSE lines (or keep an error body), within the caps."""
        resp = self.response
        resp.size += len(body)
        if resp.status != 200:
            if resp.size > LIMITS.error_body:  # enough to say what went wrong: stop reading
                resp.body.append(body[: max(0, LIMITS.error_body - (resp.size - len(body)))])
                resp.body_truncated = True
                resp.keep_alive = False
                self.on_message_complete()
                self.abort()
                return
            resp.body.append(body)
            return
        if resp.size > LIMITS.stream_body:
            self.fail(f"stream over the {mib(LIMITS.stream_body)} limit")
            return
        now = self.now
        if b"\n" not in body:
            resp.tail += body
            resp.tail_stamp = now
            if len(resp.tail) > LIMITS.line:
                self.fail(f"SSE line over the {mib(LIMITS.line)} limit")
            return
        joined = resp.tail + body
        *lines, resp.tail = joined.split(b"\n")
        resp.lines += lines
        resp.stamps += [now] * len(lines)
        resp.tail_stamp = now
        if len(joined) > LIMITS.line and any(len(x) > LIMITS.line for x in (resp.tail, *lines)):
            self.fail(f"SSE line over the {mib(LIMITS.line)} limit")
            return
        if not resp.done_seen and b"[DONE]" in body and any(ln.strip() == b"data: [DONE]" for ln in lines):
            resp.done_seen = True
            if self.on_done_line is not None:
                self.on_done_line()

    def on_message_complete(self) -> None:
        """httptools: the answer is complete; resolve the exchange with it."""
        self.response.complete = True
        self.parser = None
        if self.done is not None and not self.done.done():
            self.done.set_result(self.response)
