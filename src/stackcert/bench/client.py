"""Streaming OpenAI client: one SSE stream per request over a pool of keep-alive connections;
records that never raise.

Chunk arrival times are the kernel's receive stamps (`stackcert.bench.transport`), and JSON is
parsed once the answer is complete, so neither parsing nor a busy event loop leaks into TTFT or
ITL (vLLM's client stamps after parsing, in the request's task, whenever the loop gets to it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from stackcert.answers import (
    LIMITS,
    BadAnswer,
    as_dict,
    as_list,
    clean,
    error_message,
    loads,
    most_tokens,
    opt_count,
    opt_str,
    safe_str,
)
from stackcert.bench.records import RequestRecord
from stackcert.bench.transport import StreamPool, TransportError

Endpoint = Literal["completions", "chat"]


@dataclass
class RequestSpec:
    """One prepared request: the prompt and its token length as the client tokenizer counts it."""

    prompt: str
    prompt_len: int
    output_len: int
    body: bytes = b""  # pre-serialised at build time so the send path does no JSON work


@dataclass
class ClientConfig:
    """How the benchmark talks to one server: URL, model, endpoint, sampling switches, timeout and key."""

    base_url: str  # server root; the OpenAI API is at base_url + "/v1"
    model: str
    endpoint: Endpoint = "completions"
    ignore_eos: bool = True
    continuous_usage: bool = True  # per-chunk token counts (vLLM's stream_options.continuous_usage_stats)
    timeout_s: float = 600.0
    api_key: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The API path of the chosen endpoint (completions or chat completions)."""
        return "/v1/chat/completions" if self.endpoint == "chat" else "/v1/completions"

    @property
    def url(self) -> str:
        """The full URL requests are posted to."""
        return self.base_url.rstrip("/") + self.path


def build_body(cfg: ClientConfig, spec: RequestSpec) -> bytes:
    """The JSON body of one greedy streaming request, with usage reporting and any extra body fields."""
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


def make_session(cfg: ClientConfig, concurrency: int) -> StreamPool:
    """A pool of at most `concurrency` keep-alive connections to the server (use with `async with`)."""
    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    return StreamPool(
        cfg.base_url,
        concurrency,
        headers=headers,
        connect_timeout_s=min(cfg.timeout_s, 30.0),
    )


class _Stream:
    """State of one SSE stream while it is parsed; a broken field fails the request (`bad_field`)."""

    def __init__(self, rec: RequestRecord, chat: bool) -> None:
        self.rec = rec
        self.chat = chat
        self.text: list[str] = []
        self.done = False
        self.last_completion_tokens = 0
        self.bad: list[str] = []
        self.bad_field: str | None = None
        # More than this many completion tokens for max_tokens=N is an absurd count, not a fast server.
        self.most_tokens = most_tokens(rec.expected_output_len)

    def line(self, raw: bytes, stamp: float) -> None:
        line = raw.strip()
        if not line or line.startswith(b":") or line.startswith((b"event:", b"id:", b"retry:")):
            return
        if not line.startswith(b"data:") or self.done:  # (nothing may follow [DONE])
            self._malformed(line)
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        try:
            obj = loads(data, "SSE data")
        except BadAnswer:
            self._malformed(line)
            return
        if not isinstance(obj, dict):
            self._malformed(line)
            return
        message = error_message(obj)
        if message is not None:  # an error event fails the request, whatever else it carries
            self.rec.error = self.rec.error or f"error event in the stream: {message}"
            return
        try:
            self._chunk(obj, stamp)
        except BadAnswer as exc:
            self.bad_field = self.bad_field or str(exc)

    def _malformed(self, line: bytes) -> None:
        self.rec.malformed_lines += 1
        if len(self.bad) < 3:
            self.bad.append(clean(line[:120].decode("utf-8", "replace")))

    def _chunk(self, obj: dict[str, Any], stamp: float) -> None:
        usage = obj.get("usage")
        new_tokens = None
        if usage is not None:
            usage = as_dict(usage, "usage")
            ct = opt_count(usage.get("completion_tokens"), "usage.completion_tokens", most=self.most_tokens)
            if ct is not None:
                if ct < self.last_completion_tokens:
                    raise BadAnswer(
                        f"usage.completion_tokens went down ({self.last_completion_tokens} -> {ct})"
                    )
                new_tokens = ct - self.last_completion_tokens
                self.last_completion_tokens = ct
                self.rec.usage_output_tokens = ct
            pt = opt_count(usage.get("prompt_tokens"), "usage.prompt_tokens")
            if pt is not None:
                self.rec.usage_prompt_tokens = pt
        choices = obj.get("choices")
        if choices is None or choices == []:
            return
        choice = as_dict(as_list(choices, "choices")[0], "choices[0]")
        finish = opt_str(choice.get("finish_reason"), "finish_reason")
        if finish:
            self.rec.finish_reason = clean(finish, 40)
        if self.chat:
            delta = as_dict(choice.get("delta") or {}, "delta")
            piece = (
                opt_str(delta.get("content"), "delta.content")
                or opt_str(delta.get("reasoning_content"), "delta.reasoning_content")
                or opt_str(delta.get("reasoning"), "delta.reasoning")
                or ""
            )
            # A role-only opening chunk carries no token: it must not stop the TTFT clock.
            if not piece and not new_tokens:
                return
        else:
            piece = opt_str(choice.get("text"), "text") or ""
        self.text.append(piece)
        self.rec.chunk_times.append(stamp)
        if new_tokens is not None:
            self.rec.chunk_tokens.append(new_tokens)


async def send_request(
    pool: StreamPool,
    cfg: ClientConfig,
    spec: RequestSpec,
    rec: RequestRecord,
) -> RequestRecord:
    """Send one streaming request and fill `rec`; every failure ends up in `rec.error`, never raised."""
    request = pool.request_bytes(cfg.path, spec.body or build_body(cfg, spec))
    rec.prompt_len = spec.prompt_len
    rec.expected_output_len = spec.output_len
    stream = _Stream(rec, cfg.endpoint == "chat")
    resp = None
    broken = None
    timed_out = False
    rec.start = start = time.perf_counter()
    try:
        resp = await pool.post(request, cfg.timeout_s)
    except TransportError as exc:
        broken, timed_out = str(exc), exc.timed_out
        resp = exc.response
    except Exception as exc:  # a record, never an exception: the run must go on
        rec.error = clean(f"{type(exc).__name__}: {exc}", 300)
    if resp is not None and resp.sent:
        rec.start = start = resp.sent  # waiting for a connection or a turn is not server latency
    await pool.finishes.turn()
    if resp is not None and resp.started:
        try:
            _read_answer(rec, stream, resp)
        except Exception as exc:  # the last guard: an answer never stops the run
            rec.error = rec.error or clean(f"unreadable answer: {type(exc).__name__}: {exc}", 300)
    if broken and rec.error is None and (timed_out or not stream.done):
        # (a stream that reached [DONE] and then lost its connection is complete: HTTP/1.0-style
        # servers end the body by closing it; one that stays open after [DONE] is not)
        rec.error = clean(broken, 300)
    _finish(rec, stream, start)
    return rec


def _read_answer(rec: RequestRecord, stream: _Stream, resp: Any) -> None:
    rec.http_status = resp.status
    if resp.status != 200:
        text = b"".join(resp.body).decode("utf-8", "replace")[:500]
        rec.error = clean(f"HTTP {resp.status} {resp.reason}: {_error_text(text)}".strip(), 400)
        return
    if not resp.content_type.lower().startswith("text/event-stream"):
        rec.error = f"Content-Type {clean(resp.content_type)!r} is not text/event-stream"
        return
    for line, stamp in zip(resp.lines, resp.stamps, strict=True):
        stream.line(line, stamp)
    if resp.tail.strip():
        stream.line(resp.tail, resp.tail_stamp)


def _error_text(text: str) -> str:
    try:
        obj = loads(text, "error body")
    except BadAnswer:
        return clean(text.strip(), 300)
    return error_message(obj) or clean(str(obj), 300)


def _finish(rec: RequestRecord, stream: _Stream, start: float) -> None:
    # (a lone surrogate in the JSON text is valid JSON but no UTF-8: the record writer would fail)
    rec.generated_text = safe_str("".join(stream.text)[: LIMITS.text_chars])
    if rec.chunk_times:
        rec.ttft = rec.chunk_times[0] - start
        rec.latency = rec.chunk_times[-1] - start
    if rec.error:
        return
    if stream.bad_field:
        rec.error = f"wrong field in the stream: {clean(stream.bad_field, 200)}"
    elif stream.bad:
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
