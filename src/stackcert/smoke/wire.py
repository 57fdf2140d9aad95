"""The smoke checks' requests: bounded reads of a server's answers, every broken answer a CheckFailed.

Bodies are read up to `stackcert.answers.LIMITS` (JSON answers, SSE lines and whole streams), the
Content-Type is checked, and fields go through the typed getters of `stackcert.answers`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from stackcert.answers import (
    LIMITS,
    BadAnswer,
    aiter_lines_capped,
    aread_capped,
    clean,
    error_message,
    json_content,
    loads,
)
from stackcert.evidence.findings import Layer


class CheckFailed(Exception):
    """A check that got an answer, but a wrong one."""

    def __init__(self, detail: str, *, layer: Layer = Layer.L5_SERVING, category: str = "bad_response"):
        super().__init__(detail)
        self.detail = detail
        self.layer = layer
        self.category = category


def malformed(what: str, exc: BadAnswer) -> CheckFailed:
    """A BadAnswer as the failure of one check."""
    return CheckFailed(f"{what}: {exc}", category="malformed_json")


async def _error(resp: httpx.Response, what: str) -> CheckFailed:
    try:
        raw = await aread_capped(resp, LIMITS.error_body)
    except BadAnswer:
        raw = b"(an error body over the limit)"
    text = raw.decode("utf-8", "replace")
    try:
        message = error_message(loads(raw, what)) or text
    except BadAnswer:
        message = text
    return CheckFailed(
        f"{what}: HTTP {resp.status_code}: {clean(message, 300)}", category=f"http_{resp.status_code}"
    )


def _content_type(resp: httpx.Response, wanted: str, what: str) -> None:
    got = resp.headers.get("content-type", "")
    if wanted not in got.lower():
        raise CheckFailed(
            f"{what}: Content-Type {clean(got, 80)!r} is not {wanted}", category="bad_content_type"
        )


async def request_json(
    client: httpx.AsyncClient, method: str, url: str, what: str, body: dict[str, Any] | None = None
) -> Any:
    """Send one request and return its JSON answer (status 200, JSON Content-Type, body ≤ the cap)."""
    async with client.stream(method, url, json=body) as resp:
        if resp.status_code != 200:
            raise await _error(resp, what)
        try:
            json_content(resp.headers.get("content-type", ""), what)
            return loads(await aread_capped(resp, LIMITS.json_body), what)
        except BadAnswer as exc:
            raise malformed(what, exc) from None


async def request_text(client: httpx.AsyncClient, url: str, what: str) -> tuple[int, str]:
    """GET a text resource: (status, text ≤ the cap, undecodable bytes replaced)."""
    async with client.stream("GET", url) as resp:
        try:
            raw = await aread_capped(resp, LIMITS.json_body)
        except BadAnswer as exc:
            raise malformed(what, exc) from None
        return resp.status_code, raw.decode("utf-8", "replace")


async def stream_events(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], what: str
) -> AsyncIterator[Any]:
    """The `data:` payloads of an SSE answer, parsed; the string "[DONE]" for the end marker."""
    async with client.stream("POST", url, json=body) as resp:
        if resp.status_code != 200:
            raise await _error(resp, what)
        _content_type(resp, "text/event-stream", what)
        try:
            async for raw in aiter_lines_capped(resp):
                line = raw.strip()
                if not line or line.startswith(b":") or line.startswith((b"event:", b"id:", b"retry:")):
                    continue
                if not line.startswith(b"data:"):
                    raise CheckFailed(
                        f"malformed SSE line {clean(line[:120].decode('utf-8', 'replace'))!r}",
                        category="malformed_sse",
                    )
                payload = line[5:].strip()
                yield "[DONE]" if payload == b"[DONE]" else loads(payload, "SSE data")
        except BadAnswer as exc:
            raise CheckFailed(f"malformed SSE: {exc}", category="malformed_sse") from None
