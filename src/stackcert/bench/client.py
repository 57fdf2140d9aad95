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
        return "/v1/chat/completions" if self.endpoint == "chat" else "/v1/completions"

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.path


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
    rec.start = start = time.perf_counter()
    try:
        resp = await pool.post(request, cfg.timeout_s)
    except TransportError as exc:
        broken = str(exc)
        resp = exc.response
    except Exception as exc:  # a record, never an exception: the run must go on
        rec.error = f"{type(exc).__name__}: {exc}"
    if resp is not None and resp.sent:
        rec.start = start = resp.sent  # waiting for a connection or a turn is not server latency
    await pool.finishes.turn()
    if resp is not None and resp.started:
        rec.http_status = resp.status
        if resp.status != 200:
            text = b"".join(resp.body).decode("utf-8", "replace")[:500]
            rec.error = f"HTTP {resp.status} {resp.reason}: {_error_text(text)}".strip()
        else:
            for line, stamp in zip(resp.lines, resp.stamps, strict=True):
                stream.line(line, stamp)
            if resp.tail.strip():
                stream.line(resp.tail, resp.tail_stamp)
    if broken and not stream.done and rec.error is None:
        # (a stream that reached [DONE] and then lost its connection is complete: HTTP/1.0-style
        # servers end the body by closing it)
        rec.error = broken
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
