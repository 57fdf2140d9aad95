"""FAKE OpenAI streaming server for unit tests of HTTP clients (no model behind it).

Speaks the wire protocol of vLLM's /v1/completions and /v1/chat/completions streams: SSE `data:`
lines, a role-only first chunk for chat, `usage` (final and, when asked, continuous), `[DONE]`.
Knobs inject what real servers do wrong: malformed lines, HTTP errors, several tokens per chunk,
no usage, and dying mid-benchmark. Runs in a thread with its own event loop; it is a fake, used only
where the client is under test; every capability also has an e2e test against real vLLM.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class FakeBehaviour:
    ttft_s: float = 0.005
    itl_s: float = 0.002
    tokens_per_chunk: int = 1
    send_usage: bool = True
    malformed_every: int = 0  # every k-th request gets a garbage line in its stream
    http_error_every: int = 0  # every k-th request answers HTTP 500
    die_after: int = 0  # after this many requests have started, the server dies (0: never)
    vocab: list[str] = field(default_factory=lambda: [" alpha", " beta", " gamma", " delta"])


class FakeOpenAIServer:
    """A fake server in a thread. `base_url`, `served_model`, `log_path`, `alive()`, `findings()`
    make it usable wherever the bench expects a Server."""

    def __init__(self, behaviour: FakeBehaviour | None = None, *, log_path: Path | None = None) -> None:
        self.behaviour = behaviour or FakeBehaviour()
        self.served_model = "fake-model"
        self.log_path = log_path
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.token_sent_at: list[float] = []  # the last request's token chunks, when they were sent
        self._dead = False
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    # -- Server protocol -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return not self._dead

    def findings(self) -> list[Any]:
        return []

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._dead:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._complete)
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._log("fake server listening")

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _log(self, line: str) -> None:
        if self.log_path:
            with self.log_path.open("a") as fh:
                fh.write(line + "\n")

    # -- handlers ----------------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": self.served_model, "max_model_len": 2048}]})

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        self.requests += 1
        n = self.requests
        self.token_sent_at = []
        body = await request.json()
        self.bodies.append(body)
        chat = request.path.endswith("chat/completions")
        if b.die_after and n > b.die_after:
            self._die()
            raise ConnectionResetError("fake server died")
        if b.http_error_every and n % b.http_error_every == 0:
            return web.json_response({"error": {"message": "fake overload", "code": 500}}, status=500)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        max_tokens = int(body.get("max_tokens", 16))
        cont = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))
        if chat:
            await self._send(resp, {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        await asyncio.sleep(b.ttft_s)
        sent = 0
        while sent < max_tokens:
            k = min(b.tokens_per_chunk, max_tokens - sent)
            text = "".join(b.vocab[(sent + j) % len(b.vocab)] for j in range(k))
            sent += k
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length" if sent == max_tokens else None}
            choice["delta" if chat else "text"] = {"content": text} if chat else text
            chunk: dict[str, Any] = {"choices": [choice]}
            if cont and b.send_usage:
                chunk["usage"] = {"prompt_tokens": 3, "completion_tokens": sent}
            await self._send(resp, chunk)
            self.token_sent_at.append(time.monotonic())  # when each token chunk really left
            if b.malformed_every and n % b.malformed_every == 0 and sent == 1:
                await resp.write(b"data: {not json\n\n")
            if sent < max_tokens:
                await asyncio.sleep(b.itl_s)
        if b.send_usage:
            await self._send(resp, {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": sent}})
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _send(self, resp: web.StreamResponse, obj: dict[str, Any]) -> None:
        await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _die(self) -> None:
        if not self._dead:
            self._dead = True
            self._log("FATAL: fake engine core died (injected)")
            self._loop.create_task(self._stop())
