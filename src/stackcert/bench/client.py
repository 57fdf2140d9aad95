"""Streaming OpenAI client: one aiohttp session, one SSE stream per request, records that never raise.

Each network read is timestamped with `time.perf_counter()` as soon as its bytes arrive, before any
JSON parsing, so parsing cost never leaks into TTFT or ITL (vLLM's client stamps after parsing).
"""

from __future__ import annotations

import asyncio
import json
import selectors
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp.client_proto import ResponseHandler

from stackcert.bench.records import RequestRecord

Endpoint = Literal["completions", "chat"]
READ_BUFSIZE = 4 * 1024 * 1024  # long contexts and big usage chunks fit in one read
MAX_LINE = 16 * 1024 * 1024


@dataclass
class RequestSpec:
    """One prepared request: the prompt and its token length as the client tokenizer counts it."""

    prompt: str
    prompt_len: int
    output_len: int
    body: bytes = b""  # pre-serialised at build time so the send path does no JSON work


@dataclass
class ClientConfig:
    base_url: str  # server root; the OpenAI API is at base_url + "/v1"
    model: str
    endpoint: Endpoint = "completions"
    ignore_eos: bool = True
    continuous_usage: bool = True  # per-chunk token counts (vLLM's stream_options.continuous_usage_stats)
    timeout_s: float = 600.0
    api_key: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        path = "chat/completions" if self.endpoint == "chat" else "completions"
        return f"{self.base_url.rstrip('/')}/v1/{path}"


def build_body(cfg: ClientConfig, spec: RequestSpec) -> bytes:
    payload: dict[str, Any] = {
        "model": cfg.model,
        "max_tokens": spec.output_len,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
    }
    if cfg.continuous_usage:
        payload["stream_options"]["continuous_usage_stats"] = True
    if cfg.endpoint == "chat":
        payload["messages"] = [{"role": "user", "content": spec.prompt}]
    else:
        payload["prompt"] = spec.prompt
    if cfg.ignore_eos:
        payload["ignore_eos"] = True
    payload.update(cfg.extra_body)
    return json.dumps(payload).encode()


class StampingSelector(selectors.DefaultSelector):
    """Notes when the kernel last reported ready sockets: the arrival time of every byte read in
    that event-loop iteration, however long the loop then takes to run their callbacks."""

    last: float = 0.0

    def select(self, timeout: float | None = None) -> Any:
        ready = super().select(timeout)
        self.last = time.perf_counter()
        return ready


def stamping_loop() -> asyncio.AbstractEventLoop:
    """The event loop the benchmark runs on (asyncio.Runner(loop_factory=stamping_loop))."""
    return asyncio.SelectorEventLoop(StampingSelector())


class _StampedHandler(ResponseHandler):
    """aiohttp's connection protocol, noting when bytes first reach it from the socket.

    With hundreds of streams, chunks arrive in bursts; a task resumes only after the event loop has
    fed every ready socket and run the tasks before it, so a stamp taken in the task is late by the
    whole burst. The stamp here is the select() return of the iteration that read the bytes.
    """

    arrival: float | None = None
    selector: StampingSelector | None = None

    def data_received(self, data: bytes) -> None:
        if data and self.arrival is None:
            self.arrival = self.selector.last if self.selector is not None else time.perf_counter()
        super().data_received(data)


def _handler_factory(loop: asyncio.AbstractEventLoop) -> Any:
    selector = getattr(loop, "_selector", None)

    def make() -> _StampedHandler:
        handler = _StampedHandler(loop)
        if isinstance(selector, StampingSelector):
            handler.selector = selector
        return handler

    return make


def make_session(cfg: ClientConfig, concurrency: int) -> aiohttp.ClientSession:
    """A pool with exactly `concurrency` keep-alive connections; no total timeout on the session."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=None)
    # aiohttp builds each connection's protocol with this factory (private, hence the guard)
    if hasattr(connector, "_factory"):
        connector._factory = _handler_factory(asyncio.get_running_loop())
    headers = {"Content-Type": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    return aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=None),
        read_bufsize=READ_BUFSIZE,
        max_line_size=MAX_LINE,
        max_field_size=MAX_LINE,
        auto_decompress=False,
    )


class _Stream:
    """State of one SSE stream while it is parsed."""

    def __init__(self, rec: RequestRecord, chat: bool) -> None:
        self.rec = rec
        self.chat = chat
        self.text: list[str] = []
        self.done = False
        self.last_completion_tokens = 0
        self.bad: list[str] = []

    def line(self, raw: bytes, stamp: float) -> None:
        line = raw.strip()
        if not line or line.startswith(b":") or line.startswith((b"event:", b"id:", b"retry:")):
            return
        if not line.startswith(b"data:"):
            self._malformed(line)
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        try:
            obj = json.loads(data)
        except ValueError:
            self._malformed(line)
            return
        if not isinstance(obj, dict):
            self._malformed(line)
            return
        if "error" in obj and not obj.get("choices"):
            err = obj["error"]
            self.rec.error = str(err.get("message", err) if isinstance(err, dict) else err)
            return
        self._chunk(obj, stamp)

    def _malformed(self, line: bytes) -> None:
        self.rec.malformed_lines += 1
        if len(self.bad) < 3:
            self.bad.append(line[:120].decode("utf-8", "replace"))

    def _chunk(self, obj: dict[str, Any], stamp: float) -> None:
        usage = obj.get("usage") or None
        new_tokens = None
        if usage:
            ct = usage.get("completion_tokens")
            if isinstance(ct, int):
                new_tokens = ct - self.last_completion_tokens
                self.last_completion_tokens = ct
                self.rec.usage_output_tokens = ct
            pt = usage.get("prompt_tokens")
            if isinstance(pt, int):
                self.rec.usage_prompt_tokens = pt
        choices = obj.get("choices")
        if not choices:
            return
        choice = choices[0]
        if choice.get("finish_reason"):
            self.rec.finish_reason = choice["finish_reason"]
        if self.chat:
            delta = choice.get("delta") or {}
            piece = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""
            # A role-only opening chunk carries no token: it must not stop the TTFT clock.
            if not piece and not new_tokens:
                return
        else:
            piece = choice.get("text") or ""
        self.text.append(piece)
        self.rec.chunk_times.append(stamp)
        if new_tokens is not None:
            self.rec.chunk_tokens.append(new_tokens)


async def send_request(
    session: aiohttp.ClientSession,
    cfg: ClientConfig,
    spec: RequestSpec,
    rec: RequestRecord,
) -> RequestRecord:
    """Send one streaming request and fill `rec`; every failure ends up in `rec.error`, never raised."""
    body = spec.body or build_body(cfg, spec)
    rec.prompt_len = spec.prompt_len
    rec.expected_output_len = spec.output_len
    stream = _Stream(rec, cfg.endpoint == "chat")
    rec.start = start = time.perf_counter()
    try:
        async with asyncio.timeout(cfg.timeout_s):
            async with session.post(cfg.url, data=body) as resp:
                rec.http_status = resp.status
                if resp.status != 200:
                    text = (await resp.text(errors="replace"))[:500]
                    rec.error = f"HTTP {resp.status} {resp.reason or ''}: {_error_text(text)}".strip()
                    return rec
                buf = b""
                proto = resp.connection.protocol if resp.connection else None
                stamped = proto if isinstance(proto, _StampedHandler) else None
                if stamped is not None:
                    stamped.arrival = None  # forget the headers' arrival
                async for data in resp.content.iter_any():
                    stamp = time.perf_counter()
                    if stamped is not None and stamped.arrival is not None:
                        stamp = min(stamp, stamped.arrival)
                        stamped.arrival = None
                    buf += data
                    if b"\n" not in data:
                        continue
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        stream.line(line, stamp)
                if buf.strip():
                    stream.line(buf, time.perf_counter())
    except TimeoutError:
        rec.error = f"timed out after {cfg.timeout_s:g} s"
    except aiohttp.ClientError as exc:
        rec.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a record, never an exception: the run must go on
        rec.error = f"{type(exc).__name__}: {exc}"
    _finish(rec, stream, start)
    return rec


def _error_text(text: str) -> str:
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    except ValueError:
        return text.strip()[:300]


def _finish(rec: RequestRecord, stream: _Stream, start: float) -> None:
    rec.generated_text = "".join(stream.text)
    if rec.chunk_times:
        rec.ttft = rec.chunk_times[0] - start
        rec.latency = rec.chunk_times[-1] - start
    if rec.error:
        return
    if stream.bad:
        rec.error = f"malformed SSE line ({rec.malformed_lines}): {stream.bad[0]!r}"
    elif not rec.chunk_times:
        rec.error = "no content chunk received (cannot measure TTFT)"
    elif not stream.done and rec.finish_reason is None:
        rec.error = "stream ended before [DONE] (server closed the connection mid-answer)"
    else:
        rec.success = True
    if rec.usage_output_tokens is not None:
        rec.output_tokens = rec.usage_output_tokens
        rec.token_source = "usage"
    else:
        rec.output_tokens = len(rec.chunk_times)
        rec.token_source = "chunks"
