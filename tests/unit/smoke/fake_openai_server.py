"""A FAKE OpenAI-compatible server for unit tests of the smoke client (protocol level only).

It runs aiohttp on 127.0.0.1 in a background thread. `mode` picks a misbehaviour:
good | hang | malformed_sse | no_done | degenerate | wrong_answer | bad_metrics.
Every capability it stands in for is also tested against real vLLM in tests/e2e.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from typing import Self

from aiohttp import web

from stackcert.config import StackSpec
from stackcert.engines.base import ServerInfo
from stackcert.evidence.findings import Finding


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeOpenAIServer:
    """Implements the Server protocol; `alive()` is False once `kill()` was called."""

    def __init__(self, mode: str = "good", *, metrics: bool = True, chat: bool = False, name: str = "fake"):
        self.mode = mode
        self.metrics = metrics
        self.chat = chat
        self.stack = StackSpec(name=name, engine="endpoint", url="http://127.0.0.1")
        self.served_model = "fake-model"
        self.log_path: Path | None = None
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.info = ServerInfo(
            stack=name, engine="endpoint", base_url=self.base_url, served_model="fake-model"
        )
        self.dead = False
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # -- Server protocol
    def alive(self) -> bool:
        return not self.dead

    def findings(self) -> list[Finding]:
        return []

    # -- behaviour
    def answer(self, prompt: str) -> str:
        if self.mode == "degenerate":
            return "!" * 40
        if self.mode == "empty":  # HTTP 200 with no text
            return ""
        if "12+7" in prompt:
            return " 12+7 = 20\nQuestion:" if self.mode == "wrong_answer" else " 12+7 = 19\nQuestion: What"
        return " a small town by the river, there lived"

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append("models")
        return web.json_response({"object": "list", "data": [{"id": self.served_model, "object": "model"}]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append("stream" if body.get("stream") else "completions")
        if self.dead:
            raise ConnectionResetError("fake server is dead")
        if self.mode == "hang":
            await asyncio.sleep(3600)
        text = self.answer(body["prompt"])
        if not body.get("stream"):
            choice = {"index": 0, "text": text, "finish_reason": "length"}
            return web.json_response({"id": "cmpl-fake", "object": "text_completion", "choices": [choice]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if self.mode == "malformed_sse":
            await resp.write(b"data: {this is not json\n\n")
        pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
        for i, piece in enumerate(pieces):
            finish = "length" if i == len(pieces) - 1 else None
            chunk = {"choices": [{"index": 0, "text": piece, "finish_reason": finish}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if self.mode != "no_done":
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _chat(self, request: web.Request) -> web.Response:
        self.requests.append("chat")
        if not self.chat:
            msg = "As of transformers v4.44, default chat template is no longer allowed"
            return web.json_response({"object": "error", "message": msg}, status=400)
        message = {"role": "assistant", "content": "Paris."}
        return web.json_response({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

    async def _metrics(self, request: web.Request) -> web.Response:
        self.requests.append("metrics")
        if not self.metrics:
            return web.Response(status=404, text="Not Found")
        if self.mode == "bad_metrics":
            return web.Response(text="this is { not prometheus\n")
        text = (
            "# HELP vllm:num_requests_running Number of requests running.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            'vllm:num_requests_running{model_name="fake-model"} 0.0\n'
            "process_cpu_seconds_total 12.5\n"
        )
        return web.Response(text=text)

    def _app(self) -> web.Application:
        """The routes it serves; a subclass fake adds its own."""
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/metrics", self._metrics)
        return app

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = self._app()
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        # Cancel handlers still hanging (mode 'hang') before the loop closes.
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
