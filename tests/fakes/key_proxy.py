"""A key-checking reverse proxy on 127.0.0.1 for tests of keyed endpoints.

Every request must carry `Authorization: Bearer <key>`; one without it is answered 401 and counted in
`rejected`. Accepted requests are forwarded to the upstream server (a fake in unit tests, real vLLM
in e2e) and its answer is streamed back unchanged, so SSE streams keep their timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiohttp import web

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, ServerTimeouts
from stackcert.engines.endpoint import EndpointServer, connect

KEY = "sk-test-9f8e7d6c5b4a"
VAR = "STACKCERT_TEST_ENDPOINT_KEY"  # tests set it to KEY

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


class KeyProxy:
    """Run with `with KeyProxy(upstream, key) as proxy:`; the endpoint URL is `proxy.base_url`."""

    def __init__(self, upstream: str, key: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.key = key
        self.accepted: list[str] = []
        self.rejected: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> KeyProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        what = f"{request.method} {request.path}"
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            self.rejected.append(what)
            return web.json_response({"error": {"message": "invalid API key", "code": 401}}, status=401)
        self.accepted.append(what)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP | {"authorization"}}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=await request.read()
        ) as up:
            resp = web.StreamResponse(
                status=up.status, headers={k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            )
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp


@contextlib.contextmanager
def keyed(upstream: str, model: ModelRef, run_dir: Path, *, in_url: bool = False) -> Iterator[EndpointServer]:
    """An endpoint stack behind a key-checking proxy; the key from api_key_env or from the URL."""
    with KeyProxy(upstream, KEY) as proxy:
        url = proxy.base_url.replace("://", f"://user:{KEY}@") if in_url else proxy.base_url
        stack = StackSpec(
            name="keyed", engine="endpoint", url=f"{url}/v1", api_key_env=None if in_url else VAR
        )
        with connect(stack, model, run_dir=run_dir, timeouts=ServerTimeouts(request=30)) as server:
            yield server
        assert proxy.accepted and not proxy.rejected, proxy.rejected


def assert_no_key_and_private(run_dir: Path) -> None:
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"
