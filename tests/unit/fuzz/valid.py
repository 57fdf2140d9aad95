"""Valid answers for the fuzz corpus: what a correct server may vary, and the answers it sends.

A valid answer varies in framing, chunk boundaries, SSE comments, `data:` spacing, CRLF, extra
fields and usage; every client must accept each of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.raw_http import Close, Script, Step

GOOD = " Paris is the capital of France, a city on the Seine."
MODEL = "fake-model"


@dataclass
class Variation:
    """What a correct server may vary."""

    framing: str = "chunked"  # chunked | length | close
    cuts: list[int] = field(default_factory=list)  # where the body is split into writes/chunks
    pieces: int = 3  # stream: how many content chunks the text is split into
    usage: str = "final"  # none | final | continuous
    extras: bool = False  # extra fields, comments, event/id lines
    crlf: bool = False
    spaced: bool = True  # "data: x" or "data:x"


@dataclass
class Case:
    label: str
    steps: list[Step]
    malformed: bool
    slow: bool = False  # ends only by the client's deadline

    def script(self) -> Script:
        return Script(list(self.steps))


# -- HTTP framing ------------------------------------------------------------------------------------
def http(body: bytes, v: Variation, *, status: int = 200, ctype: str = "application/json") -> list[Step]:
    """An HTTP/1.1 answer with the body framed as `v.framing`, written in pieces at `v.cuts`."""
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\n"
    parts = _split(body, v.cuts)
    if v.framing == "length":
        return [(head + f"Content-Length: {len(body)}\r\n\r\n").encode(), *parts]
    if v.framing == "close":
        return [(head + "Connection: close\r\n\r\n").encode(), *parts, Close()]
    chunks: list[Step] = [(head + "Transfer-Encoding: chunked\r\n\r\n").encode()]
    chunks += [b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p]
    return [*chunks, b"0\r\n\r\n"]


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(body[last:p])
        last = p
    out.append(body[last:])
    return [p for p in out if p] or [body]


# -- valid answers -----------------------------------------------------------------------------------
def _extra(obj: dict[str, Any], v: Variation) -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "x", "created": 1, "model": MODEL, **obj} if v.extras else obj


def completion(v: Variation, *, logprobs: bool = False) -> dict[str, Any]:
    """A non-streamed completions answer."""
    choice: dict[str, Any] = {"index": 0, "text": GOOD, "finish_reason": "length"}
    if logprobs:
        toks = [f"token_id:{ord(c)}" for c in GOOD]
        choice["logprobs"] = {
            "tokens": toks,
            "token_logprobs": [-0.5] * len(toks),
            "top_logprobs": [{t: -0.5, "token_id:1": -2.0} for t in toks],
            "text_offset": list(range(len(toks))),
        }
    answer = _extra({"choices": [choice]}, v)
    if v.usage != "none":
        answer["usage"] = {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}
    return answer


def models_answer(v: Variation) -> dict[str, Any]:
    """A `/v1/models` answer listing the fake model."""
    cards = [_extra({"id": MODEL, "max_model_len": 2048}, v)]
    if v.extras:
        cards.append({"id": "other-model", "object": "model"})
    return {"object": "list", "data": cards}


def stream_events(v: Variation) -> list[Any]:
    """The events of a valid SSE completions stream: JSON objects, then the string "[DONE]"."""
    n = max(1, min(v.pieces, len(GOOD)))
    bounds = [round(i * len(GOOD) / n) for i in range(n + 1)]
    events: list[Any] = []
    for i in range(n):
        choice = {"index": 0, "text": GOOD[bounds[i] : bounds[i + 1]], "finish_reason": None}
        if i == n - 1:
            choice["finish_reason"] = "length"
        chunk = _extra({"choices": [choice]}, v)
        if v.usage == "continuous":
            chunk["usage"] = {"prompt_tokens": 5, "completion_tokens": i + 1}
        events.append(chunk)
    if v.usage != "none":
        events.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n}})
    events.append("[DONE]")
    return events


def sse(events: list[Any], v: Variation) -> bytes:
    """Events as SSE bytes (raw bytes events are sent as they are)."""
    nl = b"\r\n" if v.crlf else b"\n"
    prefix = b"data: " if v.spaced else b"data:"
    out = b": stream opens" + nl + nl if v.extras else b""
    for i, ev in enumerate(events):
        if isinstance(ev, bytes):
            out += ev + nl + nl
            continue
        if v.extras and i == 1:
            out += b"event: message" + nl + b"id: 1" + nl
        payload = b"[DONE]" if ev == "[DONE]" else json.dumps(ev).encode()
        out += prefix + payload + nl + nl
    return out
