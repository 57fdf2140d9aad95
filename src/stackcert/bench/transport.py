"""The benchmark's HTTP/1.1 streaming transport: a pool of keep-alive connections, kernel arrival stamps.

Why not a general HTTP client on this path: with hundreds of streams every chunk costs a task
wake-up, a stream-reader copy and a parse in a general client, and while the one core does that,
the other sockets' chunks wait to be read and are stamped late. Here:
- the arrival time of a chunk is the kernel's receive timestamp of its packet (SO_TIMESTAMPNS,
  read with the data by recvmsg), so however busy the event loop is, the stamp is when the bytes
  reached the host; where the kernel gives none (TLS, other systems), the time of the read;
- each read costs one callback: `httptools` (the C parser uvicorn uses) undoes the chunked framing
  and the SSE lines are kept as bytes with their stamp; JSON is parsed once the answer is complete;
- a request's task wakes twice (connection, completion), never per chunk, and bursts of sends and
  of answer parsing go through turnstiles, one per event-loop iteration.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import struct
import time
from typing import Any
from urllib.parse import urlsplit

from stackcert.bench import http1
from stackcert.bench.http1 import DONE_GRACE_S, Exchange, StreamResponse, TransportError
from stackcert.bench.loop import Turnstile, bench_loop, gc_paused

# Linux's SO_TIMESTAMPNS (the socket module does not export it); the control message has the same type.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("qq")
READ_SIZE = 1 << 20  # long contexts and big usage chunks fit in one read
CMSG_SPACE = socket.CMSG_SPACE(TIMESPEC.size)


WATCH_EVERY_S = 1.0


class _SocketConnection(Exchange):
    """Plain HTTP over a non-blocking socket read with recvmsg: each read comes with the kernel's
    receive time of its (last) packet, turned from CLOCK_REALTIME into time.perf_counter."""

    def __init__(self, sock: socket.socket, kernel_stamps: bool, buffer: memoryview) -> None:
        super().__init__()
        self.sock = sock
        self.buffer = buffer  # the pool's: reads run one at a time and are copied out at once
        self.kernel_stamps = kernel_stamps
        self.loop = asyncio.get_running_loop()
        self.offset_ns = 0  # CLOCK_REALTIME - CLOCK_MONOTONIC, sampled at every send
        self.loop.add_reader(sock.fileno(), self._readable)
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, host: str, port: int, buffer: memoryview) -> _SocketConnection:
        loop = asyncio.get_running_loop()
        try:  # an address needs no resolver (whose calls run in threads)
            family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            candidates: list[tuple[Any, Any]] = [(family, (host, port))]
        except ValueError:  # a name: try each of its addresses ("localhost" may be ::1 first)
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            candidates = [(info[0], info[4]) for info in infos]
        error: OSError = OSError(f"{host} has no address")
        for family, addr in candidates:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                kernel = True
            except OSError:
                kernel = False
            return cls(sock, kernel, buffer)
        raise error

    async def send(self, request: bytes) -> None:
        self.offset_ns = time.time_ns() - time.perf_counter_ns()
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(WATCH_EVERY_S, self._watch)
        try:
            try:  # a request fits the socket buffer: sent at once, no future, no loop round
                sent = self.sock.send(request)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent < len(request):
                await self.loop.sock_sendall(self.sock, memoryview(request)[sent:])
        except OSError as exc:
            self.lost(exc)

    def _readable(self) -> None:
        try:
            # into a buffer allocated once: a fresh 1 MiB bytes object per read costs ~20 us
            size, ancillary, _, _ = self.sock.recvmsg_into([self.buffer], CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close()
            self.lost(exc)
            return
        now = time.perf_counter()
        stamp = now
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= TIMESPEC.size:
                sec, nsec = TIMESPEC.unpack_from(raw)
                kernel = (sec * 1_000_000_000 + nsec - self.offset_ns) / 1e9
                if self.response.sent - 0.001 <= kernel <= now:  # a clock step: trust the read time
                    stamp = kernel
                    self.response.kernel_stamps += 1
        if not size:
            self._close()
            self.lost(None)
            return
        self.feed(bytes(self.buffer[:size]), stamp)

    def _watch(self) -> None:
        """Read once in a while during an exchange: libuv reports a reset socket as an error to
        uvloop, which then never calls the reader, and the request would wait for its timeout."""
        self._watchdog = None
        if self.closed or self.sock.fileno() < 0:
            return
        if self.done is None or self.done.done():
            return  # idle: the next send() starts watching again
        self._readable()
        if not self.closed:
            self._watchdog = self.loop.call_later(WATCH_EVERY_S, self._watch)

    def _close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        self.closed = True

    def abort(self) -> None:
        self._close()


class _TransportConnection(Exchange, asyncio.Protocol):
    """TLS (or any asyncio transport): stamped when the bytes reach the protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.feed(data, time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost(exc)

    async def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class StreamPool:
    """Up to `size` keep-alive connections to one server; `post()` streams one request."""

    def __init__(
        self,
        base_url: str,
        size: int,
        *,
        headers: dict[str, str] | None = None,
        connect_timeout_s: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head = f"Host: {host_header}\r\nAccept: text/event-stream\r\n{extra}".encode("latin-1")
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[Exchange] = []
        self._slots = asyncio.Semaphore(max(1, size))
        self._open: set[Exchange] = set()
        self._buffer = memoryview(bytearray(READ_SIZE))
        self.sends = Turnstile()  # one request written per loop iteration
        self.finishes = Turnstile()  # one answer parsed per loop iteration (the client's own use)

    async def __aenter__(self) -> StreamPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Abort every connection of the pool."""
        for conn in list(self._open):
            conn.abort()
        self._open.clear()
        self._idle.clear()

    def request_bytes(self, path: str, body: bytes) -> bytes:
        """The raw HTTP/1.1 POST of a JSON body to path, with the pool's headers."""
        return (
            f"POST {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1")
            + self._head
            + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )

    async def post(self, request: bytes, timeout_s: float) -> StreamResponse:
        """Send prepared request bytes and wait for the whole answer (at most `timeout_s`, the
        connection included). A reused connection that the server had already closed (keep-alive
        expiry) is retried once on a new one."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with self._slots:
            for attempt in (0, 1):
                conn, reused = await self._connection()
                await self.sends.turn()
                try:
                    async with asyncio.timeout_at(deadline) as limit:
                        conn.on_done_line = lambda: _shorten(limit, http1.DONE_GRACE_S)
                        resp = await conn.exchange(request)
                except TimeoutError:
                    self._discard(conn)
                    if conn.response.done_seen:
                        message = f"the body did not end within {http1.DONE_GRACE_S:g} s after [DONE]"
                    else:
                        message = f"timed out after {timeout_s:g} s"
                    raise TransportError(message, conn.response, timed_out=True) from None
                except TransportError as exc:
                    self._discard(conn)
                    stale = reused and exc.response is not None and not exc.response.started
                    if stale and attempt == 0:
                        continue
                    raise
                except BaseException:  # cancelled mid-answer: the connection is unusable
                    self._discard(conn)
                    raise
                if resp.keep_alive and not conn.closed:
                    self._idle.append(conn)
                else:
                    self._discard(conn)
                return resp
        raise AssertionError("unreachable")

    async def _connection(self) -> tuple[Exchange, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn, True
            self._open.discard(conn)
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                conn = await self._open_connection()
        except TimeoutError:
            raise TransportError(
                f"Connect to {self.host}:{self.port} failed: no answer in {self.connect_timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise TransportError(f"Connect to {self.host}:{self.port} failed: {exc}") from None
        self._open.add(conn)
        return conn, False

    async def _open_connection(self) -> Exchange:
        if self.ssl is None:
            return await _SocketConnection.open(self.host, self.port, self._buffer)
        loop: Any = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _TransportConnection, self.host, self.port, ssl=self.ssl, server_hostname=self.host
        )
        return conn

    def _discard(self, conn: Exchange) -> None:
        self._open.discard(conn)
        conn.abort()


def _shorten(limit: asyncio.Timeout, seconds: float) -> None:
    """Move a pending timeout closer: to `seconds` from now, unless it is due sooner."""
    when = asyncio.get_running_loop().time() + seconds
    current = limit.when()
    if current is None or when < current:
        limit.reschedule(when)


__all__ = [
    "DONE_GRACE_S",
    "StreamPool",
    "StreamResponse",
    "TransportError",
    "Turnstile",
    "bench_loop",
    "gc_paused",
]
