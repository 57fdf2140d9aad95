"""Async OpenAI `/v1/completions` client for consistency: greedy generation and teacher-forced scoring.

One httpx.AsyncClient per server, requests in flight bounded by an asyncio.Semaphore. Responses are
normalised to token ids where the server gives them (vLLM: `return_tokens_as_token_ids` turns token
strings into `token_id:N`); otherwise token strings are the keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, Field

from stackcert.answers import (
    LIMITS,
    BadAnswer,
    aread_capped,
    as_dict,
    as_list,
    check_usage,
    clean,
    first_choice,
    json_content,
    loads,
    most_tokens,
    opt_logprob,
    opt_str,
    safe_str,
)
from stackcert.errors import EngineError
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.evidence.signature import signature
from stackcert.secrets import auth_headers

T = TypeVar("T")
R = TypeVar("R")

Key = str  # "id:N" when the server gave token ids, else the token string itself
_SLOW_FIX = "check the server log; raise the consistency timeout_s if the server is just slow"


class TokenStep(BaseModel):
    """One position: the actual token, its log-prob, and the top-k alternatives."""

    token: Key
    logprob: float | None
    top: dict[Key, float] = Field(default_factory=dict)


class Generation(BaseModel):
    """A greedy completion of one prompt: its text, why it stopped, and the per-token log-probs."""

    prompt: str
    text: str
    finish_reason: str | None
    steps: list[TokenStep]


class Scored(BaseModel):
    """A text scored teacher-forced: the log-probs of its tokens (the first, without context, dropped)."""

    text: str
    steps: list[TokenStep]  # prompt tokens, the first (no context) dropped


class NoLogprobs(EngineError):
    """The server answered but gave no log-probs: consistency cannot be judged on it."""


def _key(token: str) -> Key:
    return "id:" + token.removeprefix("token_id:") if token.startswith("token_id:") else token


class MalformedAnswer(EngineError):
    """The server answered something that is not a valid completions answer (the reason says why)."""

    def __init__(self, what: str, *, where: str) -> None:
        super().__init__(what, where=where, fix="the server is broken: see its log")
        self.findings = [
            Finding(
                step="consistency",
                phase="request",
                layer=Layer.L5_SERVING,
                component=Component.UNKNOWN,
                category="malformed_answer",
                signature=signature("malformed_answer", None, what.split(":")[0]),
                message=f"{where}: {what}",
            )
        ]


def parse_logprobs(block: Any, where: str) -> list[TokenStep]:
    """The legacy completions `logprobs` block → steps. Raises NoLogprobs when it is missing,
    MalformedAnswer when a field has the wrong type or a log-prob is no log-probability."""
    if not isinstance(block, dict) or not block.get("tokens"):
        raise NoLogprobs(
            "the server returned no log-probs",
            where=where,
            fix="use an engine whose /v1/completions returns logprobs (vLLM, the transformers engine)",
        )
    try:
        return _steps(block)
    except BadAnswer as exc:
        raise MalformedAnswer(f"malformed logprobs: {exc}", where=where) from None


def _steps(block: dict[str, Any]) -> list[TokenStep]:
    tokens = as_list(block["tokens"], "logprobs.tokens")
    lps = as_list(block.get("token_logprobs") or [None] * len(tokens), "logprobs.token_logprobs")
    tops = as_list(block.get("top_logprobs") or [None] * len(tokens), "logprobs.top_logprobs")
    steps = []
    for i, (tok, lp, top) in enumerate(zip(tokens, lps, tops, strict=False)):
        if not isinstance(tok, str):
            raise BadAnswer(f"logprobs.tokens[{i}] is not a string")
        alternatives = as_dict(top, f"logprobs.top_logprobs[{i}]") if top is not None else {}
        steps.append(
            TokenStep(
                token=_key(safe_str(tok)),
                logprob=opt_logprob(lp, f"logprobs.token_logprobs[{i}]"),
                top={
                    _key(safe_str(k)): _number(opt_logprob(v, f"logprobs.top_logprobs[{i}][{k[:20]!r}]"))
                    for k, v in alternatives.items()
                },
            )
        )
    return steps


def _number(value: float | None) -> float:
    if value is None:
        raise BadAnswer("a top log-prob is null")
    return value


async def gather_bounded(
    items: Sequence[T],
    fn: Callable[[T], Awaitable[R]],
    concurrency: int,
    on_done: Callable[[], None] | None = None,
) -> list[R]:
    """Run fn over items with at most `concurrency` in flight; results keep the input order."""
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(item: T) -> R:
        async with sem:
            result = await fn(item)
        if on_done is not None:
            on_done()
        return result

    return list(await asyncio.gather(*(one(i) for i in items)))


class CompletionsClient:
    """Talks to one server. Use as `async with CompletionsClient(base_url, model) as c: ...`."""

    def __init__(self, base_url: str, model: str, *, timeout_s: float = 600.0, token_ids: bool = True):
        self.url = base_url.rstrip("/") + "/v1/completions"
        self.model = model
        self.token_ids = token_ids
        self.timeout_s = timeout_s  # the whole answer, not one read: a server may drip bytes
        self._http = httpx.AsyncClient(
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=64),
            headers=auth_headers(self.url),  # a keyed endpoint's key (stackcert.secrets)
        )

    async def __aenter__(self) -> CompletionsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {"model": self.model, **body}
        if self.token_ids:
            body["return_tokens_as_token_ids"] = True
        try:
            status, raw = await self._exchange(body)
        except httpx.HTTPError as exc:
            raise EngineError(f"request failed: {type(exc).__name__}: {exc}", where=self.url) from exc
        except TimeoutError:
            raise EngineError(
                f"no complete answer within {self.timeout_s:g} s", where=self.url, fix=_SLOW_FIX
            ) from None
        except BadAnswer as exc:
            raise MalformedAnswer(str(exc), where=self.url) from None
        if status >= 400:
            text = raw[: LIMITS.error_body].decode("utf-8", "replace")
            raise EngineError(
                f"server answered HTTP {status}: {clean(text, 300)}",
                where=self.url,
                fix="check the server log; the request may ask for more log-probs than the server allows",
            )
        try:
            data = as_dict(loads(raw, "completions answer"), "completions answer")
            choice = first_choice(data, "completions answer")
            most = most_tokens(int(body.get("max_tokens") or 1))
            check_usage(data.get("usage"), "completions answer: usage", most_completion=most)
            opt_str(choice.get("text"), "choices[0].text")
            opt_str(choice.get("finish_reason"), "choices[0].finish_reason")
        except BadAnswer as exc:
            raise MalformedAnswer(str(exc), where=self.url) from None
        return data

    async def _exchange(self, body: dict[str, Any]) -> tuple[int, bytes]:
        """POST under one total deadline; the body read up to LIMITS.json_body."""
        async with asyncio.timeout(self.timeout_s):
            async with self._http.stream("POST", self.url, json=body) as resp:
                if resp.status_code < 400:
                    json_content(resp.headers.get("content-type", ""), "completions answer")
                cap = LIMITS.error_body if resp.status_code >= 400 else LIMITS.json_body
                try:
                    raw = await aread_capped(resp, cap)
                except BadAnswer:
                    if resp.status_code < 400:
                        raise
                    raw = b"(an error body over the limit)"
                return resp.status_code, raw

    async def generate(
        self, prompt: str, *, max_tokens: int, top_k: int | None, stop: list[str] | None = None
    ) -> Generation:
        """Greedy completion; with top_k, per-token log-probs too (missing ones raise NoLogprobs)."""
        body: dict[str, Any] = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "seed": 0}
        if top_k is not None:
            body["logprobs"] = top_k
        if stop:
            body["stop"] = stop
        choice = (await self._post(body))["choices"][0]
        text = safe_str(choice.get("text") or "")
        steps: list[TokenStep] = []
        if top_k is not None:
            block = choice.get("logprobs")
            if block is None or text:
                steps = parse_logprobs(block, self.url)
        finish = choice.get("finish_reason")
        return Generation(prompt=prompt, text=text, finish_reason=finish and clean(finish, 40), steps=steps)

    async def score(self, text: str, *, top_k: int) -> Scored:
        """Teacher-forced log-probs of every token of `text` (echo + logprobs, one generated token)."""
        body = {"prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": top_k}
        data = await self._post(body)
        choice = data["choices"][0]
        steps = parse_logprobs(choice.get("logprobs"), self.url)
        # echo gives prompt tokens then the generated one; the first prompt token has no context.
        n_prompt = _prompt_len(data, steps)
        return Scored(text=text, steps=steps[1:n_prompt])


def _prompt_len(data: dict[str, Any], steps: list[TokenStep]) -> int:
    """How many echoed steps are the prompt: usage.prompt_tokens, else all but the one generated token."""
    usage = data.get("usage")
    n = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return int(n) if isinstance(n, int) and 0 < n <= len(steps) else max(1, len(steps) - 1)


class IdScore(BaseModel):
    """Teacher-forced scoring of a token-id sequence: one step per id (the first has no log-prob) and
    the server's own greedy next token after the sequence, with how it finished."""

    steps: list[TokenStep]
    next_step: TokenStep | None
    next_finish: str | None


def token_id(key: Key) -> int | None:
    """The integer id of an "id:N" key, None when the server named tokens by string."""
    return int(key[3:]) if key.startswith("id:") and key[3:].isdigit() else None


async def prompt_token_ids(client: CompletionsClient, prompt: str) -> list[int]:
    """The server's own tokenisation of a prompt (special tokens included), by echo.

    Raises EngineError when the server does not name tokens by id (cross-scoring needs ids)."""
    data = await client._post(
        {"prompt": prompt, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}
    )
    steps = parse_logprobs(data["choices"][0].get("logprobs"), client.url)
    n_prompt = _prompt_len(data, steps)
    ids = [token_id(s.token) for s in steps[:n_prompt]]
    if not ids or any(i is None for i in ids):
        raise EngineError("the server does not return token ids", where=client.url)
    return [i for i in ids if i is not None]


async def score_token_ids(client: CompletionsClient, ids: list[int], *, top_k: int) -> IdScore:
    """Teacher-forced log-probs of every id (echo) plus the server's greedy next token after them."""
    body = {"prompt": ids, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": top_k}
    choice = (await client._post(body))["choices"][0]
    steps = parse_logprobs(choice.get("logprobs"), client.url)
    return IdScore(
        steps=steps[: len(ids)],
        next_step=steps[len(ids)] if len(steps) > len(ids) else None,
        next_finish=choice.get("finish_reason"),
    )
