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

from stackcert.errors import EngineError

T = TypeVar("T")
R = TypeVar("R")

Key = str  # "id:N" when the server gave token ids, else the token string itself


class TokenStep(BaseModel):
    """One position: the actual token, its log-prob, and the top-k alternatives."""

    token: Key
    logprob: float | None
    top: dict[Key, float] = Field(default_factory=dict)


class Generation(BaseModel):
    prompt: str
    text: str
    finish_reason: str | None
    steps: list[TokenStep]


class Scored(BaseModel):
    text: str
    steps: list[TokenStep]  # prompt tokens, the first (no context) dropped


class NoLogprobs(EngineError):
    """The server answered but gave no log-probs: consistency cannot be judged on it."""


def _key(token: str) -> Key:
    return "id:" + token.removeprefix("token_id:") if token.startswith("token_id:") else token


def parse_logprobs(block: Any, where: str) -> list[TokenStep]:
    """The legacy completions `logprobs` block → steps. Raises NoLogprobs when it is missing."""
    if not isinstance(block, dict) or not block.get("tokens"):
        raise NoLogprobs(
            "the server returned no log-probs",
            where=where,
            fix="use an engine whose /v1/completions returns logprobs (vLLM, the transformers engine)",
        )
    tokens = block["tokens"]
    lps = block.get("token_logprobs") or [None] * len(tokens)
    tops = block.get("top_logprobs") or [None] * len(tokens)
    steps = []
    for tok, lp, top in zip(tokens, lps, tops, strict=False):
        steps.append(
            TokenStep(
                token=_key(str(tok)),
                logprob=None if lp is None else float(lp),
                top={_key(str(k)): float(v) for k, v in (top or {}).items()},
            )
        )
    return steps


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
        self._http = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=64))

    async def __aenter__(self) -> CompletionsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {"model": self.model, **body}
        if self.token_ids:
            body["return_tokens_as_token_ids"] = True
        try:
            resp = await self._http.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise EngineError(f"request failed: {type(exc).__name__}: {exc}", where=self.url) from exc
        if resp.status_code >= 400:
            raise EngineError(
                f"server answered HTTP {resp.status_code}: {resp.text[:300]}",
                where=self.url,
                fix="check the server log; the request may ask for more log-probs than the server allows",
            )
        data: dict[str, Any] = resp.json()
        if not data.get("choices"):
            raise EngineError("server answered without choices", where=self.url)
        return data

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
        text = choice.get("text") or ""
        steps: list[TokenStep] = []
        if top_k is not None:
            block = choice.get("logprobs")
            if block is None or text:
                steps = parse_logprobs(block, self.url)
        return Generation(prompt=prompt, text=text, finish_reason=choice.get("finish_reason"), steps=steps)

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
    usage = data.get("usage") or {}
    n = usage.get("prompt_tokens")
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
