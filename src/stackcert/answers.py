"""Reading answers of servers under certification: bounded bodies and lines, typed fields.

A server being certified may be broken, so nothing it sends is trusted: bodies and lines are read
up to a cap (the cap is named in the reason), JSON that is invalid, not UTF-8 or nested too deeply
is a `BadAnswer`, and fields are read through typed getters that raise `BadAnswer` on a wrong type.
Clients turn a `BadAnswer` into a failed request or a located finding, never into a crash.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class AnswerLimits:
    """Caps on what one answer may be (bytes); `docs/limits.md` explains each."""

    json_body: int = 64 << 20  # a non-streamed JSON answer (echoed log-probs of long prompts are big)
    stream_body: int = 64 << 20  # a whole SSE stream
    line: int = 1 << 20  # one SSE line
    error_body: int = 64 << 10  # what is kept of a non-200 body
    text_chars: int = 1 << 20  # generated text kept from one answer


LIMITS = AnswerLimits()


class BadAnswer(Exception):
    """A server answer that is malformed, oversized or of the wrong type; the message says which."""


def mib(n: int) -> str:
    """A byte count for a reason: '64 MiB', '1 KiB', '100 bytes'."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def loads(data: bytes | str, what: str) -> Any:
    """Parse JSON from an untrusted answer; BadAnswer for invalid JSON, bad UTF-8, deep nesting."""
    try:
        return json.loads(data)
    except RecursionError:
        raise BadAnswer(f"{what}: JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise BadAnswer(f"{what}: not UTF-8 at byte {exc.start}") from None
    except ValueError as exc:
        head = data[:80] if isinstance(data, str) else data[:80].decode("utf-8", "replace")
        raise BadAnswer(f"{what}: not JSON ({exc.__class__.__name__}): {clean(head)!r}") from None


def clean(text: str, limit: int | None = None) -> str:
    """Text safe to store and print: no lone surrogates, no control characters but newline/tab."""
    if limit is not None and len(text) > limit:
        text = text[:limit]
    text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate becomes '?'
    return "".join(ch if ch in "\n\t" or (ch >= " " and not 0x7F <= ord(ch) < 0xA0) else "?" for ch in text)


def safe_str(text: str) -> str:
    """A string that encodes as UTF-8 (lone surrogates replaced), otherwise unchanged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


# -- typed getters ---------------------------------------------------------------------------------
def as_dict(value: Any, what: str) -> dict[str, Any]:
    """`value` if it is a JSON object, else BadAnswer."""
    if not isinstance(value, dict):
        raise BadAnswer(f"{what} is {_kind(value)}, not an object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    """`value` if it is a JSON array, else BadAnswer."""
    if not isinstance(value, list):
        raise BadAnswer(f"{what} is {_kind(value)}, not an array")
    return value


def opt_str(value: Any, what: str) -> str | None:
    """A string or null, else BadAnswer."""
    if value is None or isinstance(value, str):
        return value
    raise BadAnswer(f"{what} is {_kind(value)}, not a string")


def opt_count(value: Any, what: str, *, most: int = 10_000_000) -> int | None:
    """A token count: null or an integer in [0, most]; negative or absurd counts are BadAnswer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadAnswer(f"{what} is {_kind(value)}, not an integer")
    if not 0 <= value <= most:
        raise BadAnswer(f"{what} = {value} is outside [0, {most}]")
    return value


def opt_logprob(value: Any, what: str) -> float | None:
    """A log-prob: null or a number ≤ 0 (a little slack for rounding), not NaN; else BadAnswer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadAnswer(f"{what} is {_kind(value)}, not a number")
    number = float(value)
    if math.isnan(number) or number > 1e-3:
        raise BadAnswer(f"{what} = {number} is not a log-probability")
    return number


def check_usage(value: Any, what: str, *, most_completion: int) -> None:
    """A `usage` object: null, or token counts in range (completion ≤ `most_completion`)."""
    if value is None:
        return
    usage = as_dict(value, what)
    opt_count(usage.get("prompt_tokens"), f"{what}.prompt_tokens")
    opt_count(usage.get("completion_tokens"), f"{what}.completion_tokens", most=most_completion)
    opt_count(usage.get("total_tokens"), f"{what}.total_tokens")


def most_tokens(max_tokens: int) -> int:
    """More completion tokens than this for `max_tokens` is an absurd count, not a generous server."""
    return 2 * max(max_tokens, 1) + 16


def json_content(content_type: str, what: str) -> None:
    """A JSON answer must say so: an HTML error page with status 200 is no answer."""
    if "json" not in content_type.lower():
        raise BadAnswer(f"{what}: Content-Type {clean(content_type, 80)!r} is not JSON")


def first_choice(data: Any, what: str) -> dict[str, Any]:
    """`data.choices[0]` of a completions answer, type-checked."""
    body = as_dict(data, what)
    message = error_message(body)
    if message is not None:  # an error object fails the answer, whatever else it carries
        raise BadAnswer(f"{what}: error: {message}")
    choices = as_list(body.get("choices"), f"{what}: choices")
    if not choices:
        raise BadAnswer(f"{what}: choices is empty")
    return as_dict(choices[0], f"{what}: choices[0]")


def model_ids(data: Any, what: str = "GET /v1/models") -> list[str]:
    """The model ids of a `/v1/models` answer, type-checked."""
    cards = as_list(as_dict(data, what).get("data"), f"{what}: data")
    ids = []
    for i, card in enumerate(cards):
        ident = as_dict(card, f"{what}: data[{i}]").get("id")
        if not isinstance(ident, str):
            raise BadAnswer(f"{what}: data[{i}].id is {_kind(ident)}, not a string")
        ids.append(ident)
    return ids


def error_message(data: Any) -> str | None:
    """The message of an OpenAI error object (`{"error": {...}}` or `{"object": "error"}`), if any."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if err is None and data.get("object") == "error":
        err = data
    if err is None:
        return None
    msg = err.get("message", err) if isinstance(err, dict) else err
    return clean(str(msg), 300)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else f"a {type(value).__name__}"
    )


# -- bounded reads (httpx) -------------------------------------------------------------------------
class _CappedBody:
    """The parts of a body read so far, refusing more than `cap` bytes or reading past `deadline`
    (one rule for the sync and the async reader)."""

    def __init__(self, cap: int, deadline: float | None) -> None:
        self.cap, self.deadline, self.size = cap, deadline, 0
        self.parts: list[bytes] = []

    def add(self, part: bytes) -> None:
        self.size += len(part)
        if self.size > self.cap:
            raise BadAnswer(f"answer body over the {mib(self.cap)} limit")
        self.parts.append(part)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError


async def aread_capped(resp: httpx.Response, cap: int, deadline: float | None = None) -> bytes:
    """The (decoded) body of a streamed httpx response, at most `cap` bytes (BadAnswer beyond),
    read before `deadline` (time.monotonic; TimeoutError after)."""
    body = _CappedBody(cap, deadline)
    async for part in resp.aiter_bytes():
        body.add(part)
    return b"".join(body.parts)


def read_capped(resp: httpx.Response, cap: int, deadline: float | None = None) -> bytes:
    """Synchronous `aread_capped`."""
    body = _CappedBody(cap, deadline)
    for part in resp.iter_bytes():
        body.add(part)
    return b"".join(body.parts)


def split_lines(buffer: bytearray, data: bytes, line_cap: int) -> Iterator[bytes]:
    """Append `data` to `buffer` and yield its complete lines; BadAnswer when a line passes `line_cap`."""
    buffer += data
    while True:
        end = buffer.find(b"\n")
        if end < 0:
            break
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        if len(line) > line_cap:
            raise BadAnswer(f"SSE line over the {mib(line_cap)} limit")
        yield line
    if len(buffer) > line_cap:
        raise BadAnswer(f"SSE line over the {mib(line_cap)} limit")


async def aiter_lines_capped(
    resp: httpx.Response, *, line_cap: int | None = None, total_cap: int | None = None
) -> AsyncIterator[bytes]:
    """Lines (bytes, no newline) of a streamed body, each at most `line_cap`, all at most `total_cap`."""
    line_cap = line_cap or LIMITS.line
    total_cap = total_cap or LIMITS.stream_body
    buffer = bytearray()
    size = 0
    async for part in resp.aiter_bytes():
        size += len(part)
        if size > total_cap:
            raise BadAnswer(f"stream over the {mib(total_cap)} limit")
        for line in split_lines(buffer, part, line_cap):
            yield line
    if buffer:
        yield bytes(buffer)
