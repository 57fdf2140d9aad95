"""The probes' requests: bounded in time and size, never raising; every answer becomes RequestEvidence."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from stackcert.answers import (
    LIMITS,
    BadAnswer,
    as_dict,
    check_usage,
    clean,
    error_message,
    first_choice,
    json_content,
    loads,
    most_tokens,
    opt_str,
    read_capped,
)
from stackcert.engines.base import Server
from stackcert.engines.client import request_headers
from stackcert.features.models import RequestEvidence

EXCERPT_CHARS = 300
PROMPT_SHOWN = 120  # characters of a prompt kept in the evidence (head ... tail)


@dataclass
class Reply:
    """An answer read safely: the evidence, and the parsed JSON (None unless status 200 and valid JSON)."""

    evidence: RequestEvidence
    data: Any = None
    text: str = ""

    @property
    def ok(self) -> bool:
        """HTTP 200 with a well-formed body."""
        return self.evidence.ok


def shorten(text: str, keep: int = PROMPT_SHOWN) -> str:
    """A long prompt as its head and tail with the number of characters left out."""
    if len(text) <= keep:
        return clean(text)
    half = keep // 2
    return f"{clean(text[:half])} …[{len(text) - 2 * half} chars]… {clean(text[-half:])}"


def shown_body(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """The request body as evidence: prompts and message contents shortened."""
    if body is None:
        return None
    shown = dict(body)
    if isinstance(shown.get("prompt"), str):
        shown["prompt"] = shorten(shown["prompt"])
    if isinstance(shown.get("messages"), list):
        shown["messages"] = [
            {**m, "content": shorten(m["content"])}
            if isinstance(m, dict) and isinstance(m.get("content"), str)
            else m
            for m in shown["messages"]
        ]
    return shown


class Wire:
    """One HTTP client for the probes of one server: JSON and text requests, each with a timeout."""

    def __init__(self, server: Server, *, timeout: float, max_connections: int = 128) -> None:
        self.base_url = server.base_url.rstrip("/")
        self.timeout = timeout
        self._client = httpx.Client(
            headers=request_headers(server),
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=32),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        want_json: bool = True,
    ) -> Reply:
        """Send one request; the reply's evidence says what came back, or why nothing usable did."""
        limit = timeout or self.timeout
        ev = RequestEvidence(method=method, path=path, body=shown_body(body))
        t0 = time.monotonic()
        reply = Reply(evidence=ev)
        try:
            with self._client.stream(method, self.base_url + path, json=body, timeout=limit) as resp:
                ev.status = resp.status_code
                cap = LIMITS.json_body if resp.status_code == 200 else LIMITS.error_body
                raw = read_capped(resp, cap, t0 + limit)
                reply.text = raw.decode("utf-8", "replace")
                ev.excerpt = clean(reply.text, EXCERPT_CHARS)
                if resp.status_code != 200:
                    ev.error = f"HTTP {resp.status_code}: {_error_text(raw, reply.text)}"
                elif want_json:
                    json_content(resp.headers.get("content-type", ""), f"{method} {path}")
                    reply.data = loads(raw, f"{method} {path}")
                    message = error_message(reply.data)
                    if message is not None:
                        ev.error = f"error object with status 200: {message}"
                        reply.data = None
        except (TimeoutError, httpx.TimeoutException):
            ev.error = f"no complete answer within {limit:.0f}s"
        except httpx.HTTPError as exc:
            ev.error = f"{type(exc).__name__}: {clean(str(exc), 200)}"
        except BadAnswer as exc:
            ev.error = str(exc)
            reply.data = None
        ev.duration_s = round(time.monotonic() - t0, 3)
        return reply

    def post(self, path: str, body: dict[str, Any], *, timeout: float | None = None) -> Reply:
        """POST a JSON body, expecting a JSON answer."""
        return self.request("POST", path, body, timeout=timeout)

    def get_text(self, path: str, *, timeout: float | None = None) -> Reply:
        """GET a text resource (e.g. /metrics)."""
        return self.request("GET", path, timeout=timeout, want_json=False)


def _error_text(raw: bytes, text: str) -> str:
    try:
        message = error_message(loads(raw, "error body"))
    except BadAnswer:
        message = None
    return clean(message or text, 200)


def completion_text(reply: Reply, max_tokens: int | None = None) -> str | None:
    """The generated text of a completions or chat answer, the answer type-checked (choices, text,
    finish_reason, usage counts; completion tokens against `max_tokens` when given); None (and the
    evidence's error set) if it is absent or malformed."""
    if not reply.ok:
        return None
    try:
        choice = first_choice(reply.data, "answer")
        opt_str(choice.get("finish_reason"), "choices[0].finish_reason")
        most = most_tokens(max_tokens) if max_tokens is not None else 10_000_000
        check_usage(reply.data.get("usage"), "usage", most_completion=most)
        text = opt_str(choice.get("text"), "choices[0].text")
        if text is None and "message" in choice:
            message = as_dict(choice.get("message"), "choices[0].message")
            text = opt_str(message.get("content"), "choices[0].message.content")
    except BadAnswer as exc:
        reply.evidence.error = str(exc)
        return None
    if text is None:
        reply.evidence.error = "no text in choices[0]"
        return None
    reply.evidence.excerpt = clean(text, EXCERPT_CHARS)
    return text[: LIMITS.text_chars]


def usage_counts(reply: Reply) -> dict[str, int]:
    """Token counts from `usage` (prompt_tokens, completion_tokens, cached_tokens) that are well-formed."""
    out: dict[str, int] = {}
    data = reply.data
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return out
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000_000:
            out[key] = value
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if isinstance(cached, int) and not isinstance(cached, bool) and 0 <= cached <= 10_000_000:
        out["cached_tokens"] = cached
    return out
