"""Small synchronous helpers to call a Server; a hung or failed request becomes a located finding."""

from __future__ import annotations

from typing import Any

import httpx

from stackcert.engines.base import Server
from stackcert.errors import EngineError
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.evidence.signature import signature
from stackcert.secrets import auth_headers


class RequestError(EngineError):
    """A request to a server that timed out or failed; `finding` locates it."""

    def __init__(self, what: str, *, finding: Finding, where: str) -> None:
        super().__init__(
            what, where=where, fix="see the server log; raise ServerTimeouts.request if it is just slow"
        )
        self.finding = finding
        self.findings = [finding]


def request_headers(server: Server) -> dict[str, str]:
    """Headers a request to this server needs (the endpoint engine's Bearer key; nothing otherwise)."""
    headers = getattr(server, "headers", None)
    return dict(headers) if isinstance(headers, dict) else auth_headers(server.base_url)


def post_json(
    server: Server, path: str, payload: dict[str, Any], *, timeout: float, step: str = "request"
) -> Any:
    """POST `payload` to `server.base_url + path`; RequestError on timeout, transport error or HTTP error."""
    url = f"{server.base_url}{path}"
    try:
        r = httpx.post(url, json=payload, headers=request_headers(server), timeout=timeout)
    except httpx.TimeoutException:
        category, msg = "request_timeout", f"POST {path} got no answer within {timeout:.0f}s"
    except httpx.HTTPError as exc:
        category, msg = "request_failed", f"POST {path} failed: {type(exc).__name__}: {exc}"
    else:
        if r.status_code < 400:
            return r.json()
        category, msg = "http_error", f"POST {path} answered {r.status_code}: {r.text[:300]}"
    finding = Finding(
        step=step,
        phase="serve",
        layer=Layer.L5_SERVING,
        component=Component.UNKNOWN,
        category=category,
        signature=signature(category, None, msg),
        message=msg,
    )
    raise RequestError(f"{server.stack.name}: {finding.located()}", finding=finding, where=url)
