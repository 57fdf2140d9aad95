"""Phase B checks: OpenAI-compatible requests against a running server, each with its own timeout.

The checks only need a base URL (the API lives at `base_url + '/v1'`), so they work against any
server: vLLM, the transformers engine, a remote endpoint or a test fake.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from stackcert.diagnose.findings import Layer
from stackcert.smoke.models import CheckResult, SmokeOptions, SmokePrompt
from stackcert.smoke.quality import text_problems
from stackcert.status import Status

# A Prometheus text-format sample: name{labels} value [timestamp]
_PROM_SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+(\S+)(\s+-?\d+)?$")


class CheckFailed(Exception):
    """A check that got an answer, but a wrong one."""

    def __init__(self, detail: str, *, layer: Layer = Layer.L5_SERVING, category: str = "bad_response"):
        super().__init__(detail)
        self.detail = detail
        self.layer = layer
        self.category = category


class CheckSkipped(Exception):
    """A check that does not apply here (the reason says why)."""


@dataclass
class ServeContext:
    base_url: str
    served_model: str
    has_chat_template: bool
    options: SmokeOptions
    greedy: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.base_url.rstrip("/") + "/v1"


@dataclass
class Outcome:
    """How a check ended, before it becomes a located finding."""

    result: CheckResult
    layer: Layer = Layer.L5_SERVING
    category: str = ""
    transport_error: bool = False


CheckFn = Callable[[httpx.AsyncClient, ServeContext], Awaitable[str]]


def _json(resp: httpx.Response, what: str) -> Any:
    if resp.status_code != 200:
        raise CheckFailed(
            f"{what}: HTTP {resp.status_code}: {resp.text[:300]}", category=f"http_{resp.status_code}"
        )
    try:
        return resp.json()
    except ValueError as exc:
        raise CheckFailed(
            f"{what}: response is not JSON: {resp.text[:200]!r}", category="malformed_json"
        ) from exc


def _quality(ctx: ServeContext, text: str, finish: str | None, prompt: SmokePrompt | None, what: str) -> None:
    expect = prompt.expect if prompt else None
    problems = text_problems(text, finish, expect=expect, thresholds=ctx.options.quality)
    if problems:
        category = (
            "wrong_answer" if expect and all(p.startswith("expected") for p in problems) else "bad_output"
        )
        raise CheckFailed(f"{what}: {'; '.join(problems)}", layer=Layer.L6_NUMERICS, category=category)


def _completion_body(ctx: ServeContext, prompt: str, **extra: Any) -> dict[str, Any]:
    body = {
        "model": ctx.served_model,
        "prompt": prompt,
        "max_tokens": ctx.options.max_tokens,
        "temperature": 0.0,
    }
    body.update(extra)
    return body


def _first_choice(data: Any, what: str) -> dict[str, Any]:
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise CheckFailed(f"{what}: no choices in {str(data)[:200]}", category="malformed_json") from exc
    if not isinstance(choice, dict):
        raise CheckFailed(f"{what}: choice is not an object", category="malformed_json")
    return choice


async def check_models(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    data = _json(await client.get(f"{ctx.api}/models"), "GET /v1/models")
    ids = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]
    if ctx.served_model not in ids:
        raise CheckFailed(f"'{ctx.served_model}' not listed; server lists {ids}", category="model_not_listed")
    return f"lists {ids}"


async def _complete(
    client: httpx.AsyncClient, ctx: ServeContext, prompt: SmokePrompt
) -> tuple[str, str | None]:
    data = _json(
        await client.post(f"{ctx.api}/completions", json=_completion_body(ctx, prompt.prompt)), "completion"
    )
    choice = _first_choice(data, "completion")
    text, finish = str(choice.get("text") or ""), choice.get("finish_reason")
    _quality(ctx, text, finish, prompt, f"prompt '{prompt.name}'")
    return text, finish


async def check_completions(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    for prompt in ctx.options.prompts:
        ctx.greedy[prompt.name] = await _complete(client, ctx, prompt)
    first = ctx.options.prompts[0].name
    return f"{len(ctx.options.prompts)} greedy completions ok; '{first}' -> {ctx.greedy[first][0]!r}"


async def check_chat(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    if not ctx.has_chat_template:
        raise CheckSkipped("the model has no chat template (set model.chat_template to test chat)")
    prompt = next((p for p in ctx.options.prompts if p.chat), ctx.options.prompts[0])
    body = {
        "model": ctx.served_model,
        "messages": [{"role": "user", "content": prompt.prompt}],
        "max_tokens": ctx.options.max_tokens,
        "temperature": 0.0,
    }
    data = _json(await client.post(f"{ctx.api}/chat/completions", json=body), "chat completion")
    choice = _first_choice(data, "chat completion")
    message = choice.get("message") or {}
    text = str(message.get("content") or "")
    _quality(ctx, text, choice.get("finish_reason"), None, "chat")
    return f"chat -> {text[:60]!r}"


def parse_sse_line(line: str) -> tuple[str, Any] | None:
    """One SSE line: ('done', None), ('data', obj), or None for blank/comment/field lines."""
    line = line.strip()
    if not line or line.startswith(":") or line.startswith(("event:", "id:", "retry:")):
        return None
    if not line.startswith("data:"):
        raise CheckFailed(f"malformed SSE line {line[:120]!r}", category="malformed_sse")
    payload = line[5:].strip()
    if payload == "[DONE]":
        return ("done", None)
    try:
        return ("data", json.loads(payload))
    except ValueError as exc:
        raise CheckFailed(f"malformed SSE data {payload[:120]!r}", category="malformed_sse") from exc


async def check_stream(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    prompt = ctx.options.prompts[0]
    body = _completion_body(ctx, prompt.prompt, stream=True)
    chunks, done, parts, finish = 0, False, [], None
    async with client.stream("POST", f"{ctx.api}/completions", json=body) as resp:
        if resp.status_code != 200:
            await resp.aread()
            raise CheckFailed(f"stream: HTTP {resp.status_code}: {resp.text[:300]}", category="http_error")
        async for line in resp.aiter_lines():
            parsed = parse_sse_line(line)
            if parsed is None:
                continue
            if parsed[0] == "done":
                done = True
                continue
            if done:
                raise CheckFailed("data after [DONE]", category="malformed_sse")
            chunks += 1
            for choice in parsed[1].get("choices", []) if isinstance(parsed[1], dict) else []:
                parts.append(str(choice.get("text") or ""))
                finish = choice.get("finish_reason") or finish
    text = "".join(parts)
    if not done:
        raise CheckFailed(f"stream ended without [DONE] after {chunks} chunks", category="malformed_sse")
    if chunks == 0:
        raise CheckFailed("no chunks before [DONE]", category="malformed_sse")
    _quality(ctx, text, finish, None, "stream")
    reference = ctx.greedy.get(prompt.name)
    if reference is None:
        reference = await _complete(client, ctx, prompt)
    if text != reference[0]:
        raise CheckFailed(
            f"streamed text {text!r} != non-stream greedy text {reference[0]!r}",
            layer=Layer.L6_NUMERICS,
            category="stream_mismatch",
        )
    return f"{chunks} chunks, [DONE], text equals the non-stream greedy text"


async def check_concurrency(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    n = ctx.options.concurrency
    prompts = [ctx.options.prompts[i % len(ctx.options.prompts)] for i in range(n)]

    async def one(p: SmokePrompt) -> None:
        data = _json(
            await client.post(f"{ctx.api}/completions", json=_completion_body(ctx, p.prompt)), "burst"
        )
        choice = _first_choice(data, "burst")
        text = str(choice.get("text") or "")
        # Batched numerics may differ from single requests: check quality, not equality.
        _quality(ctx, text, choice.get("finish_reason"), None, f"burst '{p.name}'")

    results = await asyncio.gather(*(one(p) for p in prompts), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        first = errors[0]
        if not isinstance(first, CheckFailed):
            raise first
        raise CheckFailed(
            f"{len(errors)}/{n} concurrent requests failed; first: {first.detail}",
            layer=first.layer,
            category=first.category,
        )
    return f"{n} concurrent requests ok"


async def check_metrics(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    resp = await client.get(ctx.base_url.rstrip("/") + "/metrics")
    if resp.status_code == 404:
        raise CheckSkipped("the server has no /metrics endpoint (404)")
    if resp.status_code != 200:
        raise CheckFailed(f"/metrics: HTTP {resp.status_code}", category="http_error")
    samples = 0
    for number, line in enumerate(resp.text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _PROM_SAMPLE.match(line.strip())
        if not match:
            raise CheckFailed(
                f"/metrics line {number} is not Prometheus text: {line[:100]!r}", category="bad_metrics"
            )
        try:
            float(match.group(2))
        except ValueError as exc:
            raise CheckFailed(
                f"/metrics line {number}: bad value {match.group(2)!r}", category="bad_metrics"
            ) from exc
        samples += 1
    if samples == 0:
        raise CheckFailed("/metrics has no samples", category="bad_metrics")
    return f"{samples} Prometheus samples"


# (name, function, number of sequential requests: scales the check's time limit)
SERVE_CHECKS: list[tuple[str, CheckFn, int]] = [
    ("models", check_models, 1),
    ("completions", check_completions, 0),  # one per prompt
    ("chat", check_chat, 1),
    ("stream", check_stream, 2),
    ("concurrency", check_concurrency, 2),
    ("metrics", check_metrics, 1),
]


async def run_check(
    name: str, fn: CheckFn, client: httpx.AsyncClient, ctx: ServeContext, requests: int
) -> Outcome:
    """Run one check under its own time limit; every way it can end becomes an Outcome."""
    limit = ctx.options.request_timeout_s * max(requests or len(ctx.options.prompts), 1)
    started = time.monotonic()

    def done(status: Status, detail: str, **kw: Any) -> Outcome:
        result = CheckResult(
            name=name, status=status, duration_s=round(time.monotonic() - started, 3), detail=detail
        )
        return Outcome(result=result, **kw)

    try:
        detail = await asyncio.wait_for(fn(client, ctx), timeout=limit)
        return done(Status.PASS, detail)
    except CheckSkipped as exc:
        return done(Status.SKIPPED, str(exc))
    except CheckFailed as exc:
        return done(Status.FAIL, exc.detail, layer=exc.layer, category=exc.category)
    except (TimeoutError, httpx.TimeoutException) as exc:
        what = type(exc).__name__
        return done(Status.TIMEOUT, f"no answer within {limit:.0f}s ({what})", category="request_timeout")
    except httpx.TransportError as exc:
        detail = f"{type(exc).__name__}: {exc}"
        return done(Status.FAIL, detail, category="connection_error", transport_error=True)
