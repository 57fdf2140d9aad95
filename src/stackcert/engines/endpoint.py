"""The endpoint engine: a server someone else runs, given by URL; we only check and use it.

The API key is read from the variable named by `stack.api_key_env` (or taken from the password of
the URL, `http://user:KEY@host`) and sent as a Bearer token on every request of every client: it is
registered for the server's origin in `stackcert.secrets` while the stack is connected. It lives only
in memory: never in repr, ServerInfo, server.json, logs or reports.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from stackcert.answers import LIMITS, BadAnswer, clean, json_content, loads, model_ids, read_capped
from stackcert.config import StackSpec
from stackcert.engines.base import EngineStartError, ModelRef, ServerInfo, ServerTimeouts
from stackcert.errors import ExitCode
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.evidence.signature import signature
from stackcert.jsonio import envelope, write_json_atomic
from stackcert.secrets import forget_key, register_key


def _finding(category: str, message: str, layer: Layer = Layer.L5_SERVING) -> Finding:
    return Finding(
        step="launch",
        phase="connect",
        layer=layer,
        component=Component.CLIENT,
        category=category,
        signature=signature(category, None, message),
        message=message,
    )


class EndpointServer:
    """A remote OpenAI-compatible server; implements the `Server` protocol."""

    def __init__(self, stack: StackSpec, served_model: str, api_key: str | None) -> None:
        self.stack = stack
        url, url_key = split_userinfo((stack.url or "").rstrip("/"))
        self.base_url = url.removesuffix("/v1")
        self.served_model = served_model
        self.log_path: Path | None = None
        self.__key = api_key or url_key
        self.info = ServerInfo(
            stack=stack.name,
            engine="endpoint",
            launcher="url",
            base_url=self.base_url,
            served_model=served_model,
        )

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header for the key, or none without a key."""
        return {"Authorization": f"Bearer {self.__key}"} if self.__key else {}

    @property
    def key(self) -> str | None:
        """The key (in memory only)."""
        return self.__key

    def alive(self) -> bool:
        """Whether GET /v1/models answers with a valid model list within 10 s."""
        try:
            list_models(self.base_url, self.headers, 10)
        except (httpx.HTTPError, BadAnswer, TimeoutError):
            return False
        return True

    def findings(self) -> list[Finding]:
        """Nothing: a server someone else runs has no log we can read."""
        return []

    def __repr__(self) -> str:
        key = "set" if self.__key else "none"
        return f"EndpointServer(stack={self.stack.name!r}, base_url={self.base_url!r}, key={key})"


def read_key(stack: StackSpec) -> str | None:
    """The API key from the variable api_key_env names; an unset variable fails (exit 2)."""
    if not stack.api_key_env:
        return None
    key = os.environ.get(stack.api_key_env)
    if not key:
        f = _finding(
            "missing_api_key", f"the variable {stack.api_key_env} (api_key_env) is not set", Layer.L5_SERVING
        )
        err = EngineStartError(
            f"{stack.name}: {f.located()}",
            findings=[f],
            where="api_key_env",
            fix=f"export {stack.api_key_env}=<key>",
        )
        err.exit_code = ExitCode.USAGE
        raise err
    return key


def split_userinfo(url: str) -> tuple[str, str | None]:
    """(the URL without `user:password@`, the password or else the user name as a key)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), (
        unquote(password or user) or None
    )


def list_models(base_url: str, headers: dict[str, str], timeout: float) -> list[str]:
    """The model ids `GET /v1/models` lists: HTTPError, BadAnswer (malformed, oversized) or
    TimeoutError (the whole answer took longer than `timeout`)."""
    deadline = time.monotonic() + timeout
    url = f"{base_url}/v1/models"
    with httpx.Client(timeout=timeout) as client, client.stream("GET", url, headers=headers) as r:
        r.raise_for_status()
        json_content(r.headers.get("content-type", ""), "GET /v1/models")
        raw = read_capped(r, LIMITS.json_body, deadline)
    return model_ids(loads(raw, "GET /v1/models"))


@contextlib.contextmanager
def connect(
    stack: StackSpec, model: ModelRef, *, run_dir: Path, timeouts: ServerTimeouts
) -> Iterator[EndpointServer]:
    """Check the endpoint serves the model and hold its key for the with-block; writes server.json."""
    server = EndpointServer(stack, model.served_name, read_key(stack))
    try:
        ids = list_models(server.base_url, server.headers, timeouts.request)
    except (httpx.HTTPError, BadAnswer, TimeoutError, ValueError) as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        category = "auth_error" if status in (401, 403) else "unreachable"
        if isinstance(exc, BadAnswer):
            category = "bad_response"
        detail = clean(str(exc) or "no complete answer in time", 300)
        f = _finding(category, f"GET {server.base_url}/v1/models failed: {type(exc).__name__}: {detail}")
        raise EngineStartError(
            f"{stack.name}: {f.located()}",
            findings=[f],
            where=server.base_url,
            fix="check the URL, the server, and the API key variable",
        ) from None
    wanted = str(stack.engine_args.get("served_model") or model.served_name)
    if wanted not in ids:
        if len(ids) != 1:
            f = _finding("model_not_served", f"{server.base_url} does not serve '{wanted}' (it serves {ids})")
            raise EngineStartError(
                f"{stack.name}: {f.located()}",
                findings=[f],
                where=server.base_url,
                fix="set engine_args.served_model to one of the served models",
            )
        wanted = ids[0]  # the only model there: the endpoint names it its own way
    server.served_model = server.info.served_model = wanted
    write_json_atomic(run_dir / "server.json", envelope("server", server.info.model_dump(mode="json")))
    register_key(server.base_url, server.key)
    try:
        yield server
    finally:
        forget_key(server.base_url)
