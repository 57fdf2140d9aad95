"""Phase B checks: OpenAI-compatible requests against a running server, each with its own timeout.

The checks only need a base URL (the API lives at `base_url + '/v1'`), so they work against any
server: vLLM, the transformers engine, a remote endpoint or a test fake.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from stackcert.answers import (
    BadAnswer,
    as_dict,
    as_list,
    check_usage,
    clean,
    error_message,
    first_choice,
    model_ids,
    most_tokens,
    opt_str,
)
from stackcert.evidence.findings import Layer
from stackcert.smoke.models import CheckResult, SmokeOptions, SmokePrompt
from stackcert.smoke.quality import text_problems
from stackcert.smoke.wire import CheckFailed, malformed, request_json, request_text, stream_events
from stackcert.status import Status

# A Prometheus text-format sample: name{labels} value [timestamp]
_PROM_SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+(\S+)(\s+-?\d+)?$")


class CheckSkipped(Exception):
    """A check that does not apply here (the reason says why)."""


@dataclass
class ServeContext:
    """What the serve checks share: the server, the options, and the greedy texts the completions got."""

    base_url: str
    served_model: str
    has_chat_template: bool
    options: SmokeOptions
    greedy: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """The base URL of the OpenAI API (`base_url/v1`)."""
        return self.base_url.rstrip("/") + "/v1"


@dataclass
class Outcome:
    """How a check ended, before it becomes a located finding."""

    result: CheckResult
    layer: Layer = Layer.L5_SERVING
    category: str = ""
    transport_error: bool = False


CheckFn = Callable[[httpx.AsyncClient, ServeContext], Awaitable[str]]


def _quality(ctx: ServeContext, text: str, finish: str | None, prompt: SmokePrompt | None, what: str) -> None:
    expect = prompt.expect if prompt else None
    longest = max_answer_chars(ctx.options.max_tokens)
    if len(text) > longest:  # (and the quality checks below stay cheap)
        raise CheckFailed(
            f"{what}: answer of {len(text)} characters for max_tokens={ctx.options.max_tokens} "
            f"(limit {longest})",
            category="oversized_answer",
        )
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


def max_answer_chars(max_tokens: int) -> int:
    """The longest answer a request for `max_tokens` tokens may get (no token is 64 characters)."""
    return 64 * max_tokens + 1024


def _choice(data: Any, what: str, max_tokens: int) -> tuple[dict[str, Any], str | None]:
    """The first choice and its finish_reason, type-checked."""
    try:
        choice = first_choice(data, what)
        finish = opt_str(choice.get("finish_reason"), f"{what}: finish_reason")
        check_usage(data.get("usage"), f"{what}: usage", most_completion=most_tokens(max_tokens))
    except BadAnswer as exc:
        raise malformed(what, exc) from None
    return choice, finish and clean(finish, 40)


def _text(value: Any, what: str) -> str:
    try:
        return opt_str(value, what) or ""
    except BadAnswer as exc:
        raise malformed(what, exc) from None


async def check_models(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    """GET /v1/models must list the served model."""
    data = await request_json(client, "GET", f"{ctx.api}/models", "GET /v1/models")
    try:
        ids = model_ids(data)
    except BadAnswer as exc:
        raise malformed("GET /v1/models", exc) from None
    if ctx.served_model not in ids:
        listed = clean(str(ids[:20]), 300)
        raise CheckFailed(
            f"'{ctx.served_model}' not listed; server lists {listed}", category="model_not_listed"
        )
    return f"lists {ids}"


async def _complete(
    client: httpx.AsyncClient, ctx: ServeContext, prompt: SmokePrompt
) -> tuple[str, str | None]:
    body = _completion_body(ctx, prompt.prompt)
    data = await request_json(client, "POST", f"{ctx.api}/completions", "completion", body)
    choice, finish = _choice(data, "completion", ctx.options.max_tokens)
    text = _text(choice.get("text"), "completion: text")
    _quality(ctx, text, finish, prompt, f"prompt '{prompt.name}'")
    return text, finish


async def check_completions(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    """A greedy completion of every prompt must be sound (and hold its expected text); kept for stream."""
    for prompt in ctx.options.prompts:
        ctx.greedy[prompt.name] = await _complete(client, ctx, prompt)
    first = ctx.options.prompts[0].name
    return f"{len(ctx.options.prompts)} greedy completions ok; '{first}' -> {ctx.greedy[first][0]!r}"


async def check_chat(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    """A greedy chat completion must be sound; skipped when the model has no chat template."""
    if not ctx.has_chat_template:
        raise CheckSkipped("the model has no chat template (set model.chat_template to test chat)")
    prompt = next((p for p in ctx.options.prompts if p.chat), ctx.options.prompts[0])
    body = {
        "model": ctx.served_model,
        "messages": [{"role": "user", "content": prompt.prompt}],
        "max_tokens": ctx.options.max_tokens,
        "temperature": 0.0,
    }
    data = await request_json(client, "POST", f"{ctx.api}/chat/completions", "chat completion", body)
    choice, finish = _choice(data, "chat completion", ctx.options.max_tokens)
    try:
        message = as_dict(choice.get("message"), "chat completion: message")
    except BadAnswer as exc:
        raise malformed("chat completion", exc) from None
    text = _text(message.get("content"), "chat completion: message.content")
    _quality(ctx, text, finish, None, "chat")
    return f"chat -> {text[:60]!r}"


async def check_stream(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    """A streamed completion must be well-formed SSE ending in [DONE], with the non-stream greedy text."""
    prompt = ctx.options.prompts[0]
    body = _completion_body(ctx, prompt.prompt, stream=True)
    chunks, done, parts, finish = 0, False, [], None
    async for event in stream_events(client, f"{ctx.api}/completions", body, "stream"):
        if done:
            raise CheckFailed("data after [DONE]", category="malformed_sse")
        if event == "[DONE]":
            done = True
            continue
        if not isinstance(event, dict):
            raise CheckFailed(
                f"malformed SSE: data is not an object: {clean(str(event), 80)!r}", category="malformed_sse"
            )
        message = error_message(event)
        if message is not None:
            raise CheckFailed(f"stream: error event: {message}", category="stream_error")
        chunks += 1
        try:
            check_usage(
                event.get("usage"), "stream: usage", most_completion=most_tokens(ctx.options.max_tokens)
            )
            for i, choice in enumerate(as_list(event.get("choices") or [], "stream: choices")):
                choice = as_dict(choice, f"stream: choices[{i}]")
                parts.append(opt_str(choice.get("text"), "stream: text") or "")
                finish = opt_str(choice.get("finish_reason"), "stream: finish_reason") or finish
        except BadAnswer as exc:
            raise CheckFailed(str(exc), category="malformed_sse") from None
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
            f"streamed text {clean(text, 200)!r} != non-stream greedy text {clean(reference[0], 200)!r}",
            layer=Layer.L6_NUMERICS,
            category="stream_mismatch",
        )
    return f"{chunks} chunks, [DONE], text equals the non-stream greedy text"


async def check_concurrency(client: httpx.AsyncClient, ctx: ServeContext) -> str:
    """A burst of concurrent completions must all answer soundly (quality, not equality)."""
    n = ctx.options.concurrency
    prompts = [ctx.options.prompts[i % len(ctx.options.prompts)] for i in range(n)]

    async def one(p: SmokePrompt) -> None:
        body = _completion_body(ctx, p.prompt)
        data = await request_json(client, "POST", f"{ctx.api}/completions", "burst", body)
        choice, finish = _choice(data, "burst", ctx.options.max_tokens)
        text = _text(choice.get("text"), "burst: text")
        # Batched numerics may differ from single requests: check quality, not equality.
        _quality(ctx, text, finish, None, f"burst '{p.name}'")

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
    """GET /metrics must be Prometheus text with at least one sample; skipped on 404."""
    status, text = await request_text(client, ctx.base_url.rstrip("/") + "/metrics", "/metrics")
    if status == 404:
        raise CheckSkipped("the server has no /metrics endpoint (404)")
    if status != 200:
        raise CheckFailed(f"/metrics: HTTP {status}", category="http_error")
    samples = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _PROM_SAMPLE.match(line.strip())
        if not match:
            raise CheckFailed(
                f"/metrics line {number} is not Prometheus text: {clean(line, 100)!r}", category="bad_metrics"
            )
        try:
            float(match.group(2))
        except ValueError as exc:
            raise CheckFailed(
                f"/metrics line {number}: bad value {clean(match.group(2), 40)!r}", category="bad_metrics"
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
        detail = clean(f"{type(exc).__name__}: {exc}", 300)
        return done(Status.FAIL, detail, category="connection_error", transport_error=True)
    except BadAnswer as exc:
        return done(Status.FAIL, clean(str(exc), 300), category="malformed_json")
    except Exception as exc:  # the last guard: a broken answer is a finding, never a crash of the phase
        detail = clean(f"unreadable answer: {type(exc).__name__}: {exc}", 300)
        return done(Status.FAIL, detail, category="client_error")
