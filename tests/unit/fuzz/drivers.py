"""Each client that reads a server's answer, driven once against a URL: (ok, reason).

A driver returns whether the client accepted the answer and the reason it gave when it did not;
any exception escaping a driver is a bug of the client under test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.unit.fuzz.corpus import GOOD, MODEL

from stackcert.bench.client import ClientConfig, RequestSpec, make_session, send_request
from stackcert.bench.records import RequestRecord
from stackcert.bench.runner import server_models
from stackcert.bench.transport import bench_loop
from stackcert.config import StackSpec
from stackcert.consistency.client import CompletionsClient
from stackcert.engines.base import EngineStartError, ModelRef, ServerTimeouts
from stackcert.engines.endpoint import connect
from stackcert.engines.server import serves_model
from stackcert.errors import EngineError
from stackcert.jsonio import dumps
from stackcert.smoke.checks import ServeContext, check_completions, check_models, check_stream, run_check
from stackcert.smoke.models import SmokeOptions, SmokePrompt
from stackcert.status import Status

TIMEOUT_S = 0.5
Result = tuple[bool, str]


def bench(url: str) -> Result:
    cfg = ClientConfig(base_url=url, model=MODEL, timeout_s=TIMEOUT_S)

    async def go() -> RequestRecord:
        async with make_session(cfg, 1) as pool:
            return await send_request(pool, cfg, RequestSpec("hi", 1, 16), RequestRecord(index=0))

    with asyncio.Runner(loop_factory=bench_loop) as runner:
        rec = runner.run(go())
    # The record must be writable as it is (bench.json/requests.jsonl are strict UTF-8 JSON).
    dumps(rec.model_dump(mode="json")).encode("utf-8")
    return rec.success, rec.error or ""


def _smoke(name: str, requests: int) -> Callable[[str], Result]:
    fn = {"stream": check_stream, "completions": check_completions, "models": check_models}[name]

    def drive(url: str) -> Result:
        options = SmokeOptions(
            prompts=[SmokePrompt(name="p", prompt="The capital of France is")],
            max_tokens=16,
            request_timeout_s=TIMEOUT_S,
        )
        ctx = ServeContext(base_url=url, served_model=MODEL, has_chat_template=False, options=options)
        ctx.greedy["p"] = (GOOD, "length")  # the stream is compared with it, no second request

        async def go() -> tuple[Status, str]:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, trust_env=False) as client:
                outcome = await run_check(name, fn, client, ctx, requests)
            return outcome.result.status, outcome.result.detail

        status, detail = asyncio.run(go())
        return status == Status.PASS, detail

    return drive


def _consistency(logprobs: bool) -> Callable[[str], Result]:
    def drive(url: str) -> Result:
        async def go() -> Result:
            async with CompletionsClient(url, MODEL, timeout_s=TIMEOUT_S) as client:
                try:
                    gen = await client.generate("hi", max_tokens=16, top_k=2 if logprobs else None)
                except EngineError as exc:
                    return False, exc.one_line()
            json.dumps(gen.model_dump(mode="json")).encode("utf-8")
            return True, ""

        return asyncio.run(go())

    return drive


def bench_models(url: str) -> Result:
    try:
        cards = asyncio.run(server_models(url, timeout_s=TIMEOUT_S))
    except EngineError as exc:
        return False, exc.one_line()
    return MODEL in [c.get("id") for c in cards], "model not listed"


def readiness(url: str) -> Result:
    with httpx.Client(trust_env=False) as client:
        return serves_model(client, url, MODEL, TIMEOUT_S), ""


def endpoint(url: str, run_dir: Path) -> Result:
    stack = StackSpec(name="ep", engine="endpoint", url=url)
    model = ModelRef(path=run_dir, served_name=MODEL, tokenizer=run_dir)
    try:
        with connect(stack, model, run_dir=run_dir, timeouts=ServerTimeouts(request=TIMEOUT_S)):
            return True, ""
    except EngineStartError as exc:
        return False, exc.one_line()


# client name -> (answer kind, driver taking the URL and a scratch folder)
CLIENTS: dict[str, tuple[str, Callable[[str, Path], Result]]] = {
    "bench": ("stream", lambda url, _: bench(url)),
    "smoke_stream": ("stream", lambda url, _: _smoke("stream", 2)(url)),
    "smoke_completions": ("json", lambda url, _: _smoke("completions", 1)(url)),
    "smoke_models": ("models", lambda url, _: _smoke("models", 1)(url)),
    "consistency": ("json", lambda url, _: _consistency(False)(url)),
    "consistency_logprobs": ("json_logprobs", lambda url, _: _consistency(True)(url)),
    "readiness": ("models", lambda url, _: readiness(url)),
    "bench_models": ("models", lambda url, _: bench_models(url)),
    "endpoint": ("models", endpoint),
}
