"""A small OpenAI-compatible server over a transformers model, for the same checks as vLLM.

    python -m stackcert.engines.hf_server --model DIR --served-model-name NAME --port N
        [--tokenizer DIR] [--dtype bfloat16] [--max-model-len 2048] [--chat-template FILE]
        [--operators JSON --effective-ops FILE]

Serves /health, /v1/models, /v1/completions (logprobs, echo with prompt logprobs, stream with
stream_options.include_usage, return_tokens_as_token_ids) and /v1/chat/completions. One request
at a time (a lock): correctness over speed; with --batch-size N, concurrent scoring requests run as
one padded batch (hf_batch.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from stackcert.engines.hf_batch import ScoreBatcher
from stackcert.engines.hf_core import HFModel, Step, apply_operators

State = dict[str, Any]


def _error(status: int, message: str) -> web.Response:
    body = {
        "error": {"message": message, "type": "BadRequestError" if status == 400 else "Error", "code": status}
    }
    return web.json_response(body, status=status)


def _tok(m: HFModel, tid: int, as_ids: bool) -> str:
    return f"token_id:{tid}" if as_ids else m.token_str(tid)


def _logprobs_block(m: HFModel, steps: list[Step | None], ids: list[int], as_ids: bool) -> dict[str, Any]:
    tokens, lps, tops, offsets = [], [], [], []
    text_len = 0
    for tid, st in zip(ids, steps, strict=True):
        s = _tok(m, tid, as_ids)
        tokens.append(s)
        offsets.append(text_len)
        text_len += len(m.token_str(tid))
        lps.append(None if st is None else st.logprob)
        tops.append(None if st is None else {_tok(m, k, as_ids): v for k, v in st.top.items()})
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


async def _in_thread(state: State, fn: Callable[[], Any]) -> Any:
    async with state["lock"]:
        return await asyncio.get_running_loop().run_in_executor(None, fn)


def _params(body: dict[str, Any]) -> tuple[int, float, int]:
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 16))
    temperature = float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0)
    logprobs = body.get("logprobs")
    top = int(body.get("top_logprobs") or 0) if isinstance(logprobs, bool) else int(logprobs or 0)
    return int(16 if max_tokens is None else max_tokens), temperature, top


def _check_len(state: State, ids: list[int], max_tokens: int) -> str | None:
    limit = state["model"].max_model_len
    if len(ids) + max_tokens > limit:
        return (
            f"This model's maximum context length is {limit} tokens; the request has "
            f"{len(ids)} prompt tokens + {max_tokens} max_tokens"
        )
    return None


async def completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions: one prompt (text or ids), streamed or not, with echo and log-probs."""
    state: State = request.app["state"]
    m: HFModel = state["model"]
    try:
        body = await request.json()
        max_tokens, temperature, top = _params(body)
    except (ValueError, TypeError) as exc:
        return _error(400, f"invalid request: {exc}")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        if len(prompt) != 1:
            return _error(400, "this server takes one prompt per request")
        prompt = prompt[0]
    if not isinstance(prompt, str | list) or not prompt:
        return _error(400, "'prompt' must be a non-empty string or a list of token ids")
    ids = m.encode(prompt)
    if (msg := _check_len(state, ids, max_tokens)) is not None:
        return _error(400, msg)
    as_ids = bool(body.get("return_tokens_as_token_ids"))
    want_lp = body.get("logprobs") is not None
    echo = bool(body.get("echo"))
    ignore_eos = bool(body.get("ignore_eos"))
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await _stream(
            request,
            state,
            ids,
            max_tokens,
            temperature,
            top,
            include_usage,
            chat=False,
            ignore_eos=ignore_eos,
        )

    stops = _stops(body)
    batcher: ScoreBatcher | None = state.get("batcher")
    if batcher is not None and echo and want_lp and max_tokens == 1 and not stops and temperature == 0:
        prompt_steps, nxt = await batcher.score(ids, top)
        scored = {
            "index": 0,
            "text": m.decode([*ids, nxt.token_id]),
            "finish_reason": _finish(m, [nxt], 1, ignore_eos),
            "logprobs": _logprobs_block(m, [*prompt_steps, nxt], [*ids, nxt.token_id], as_ids),
        }
        return web.json_response(_envelope(state, "text_completion", [scored], len(ids), 1))

    def work() -> tuple[list[Step | None], list[Step], str | None]:
        prompt_steps = m.score_prompt(ids, top) if echo and want_lp else []
        steps, cut = _until_stop(m, m.generate(ids, max_tokens, top, temperature, ignore_eos), stops)
        return prompt_steps, steps, cut

    prompt_steps, steps, cut = await _in_thread(state, work)
    out_ids = [s.token_id for s in steps]
    text = cut if cut is not None else m.decode(out_ids)
    choice: dict[str, Any] = {
        "index": 0,
        "text": (m.decode(ids) + text) if echo else text,
        "finish_reason": "stop" if cut is not None else _finish(m, steps, max_tokens, ignore_eos),
        "logprobs": None,
    }
    if want_lp:
        all_ids = (ids if echo else []) + out_ids
        all_steps: list[Step | None] = [*(prompt_steps if echo else []), *steps]
        choice["logprobs"] = _logprobs_block(m, all_steps, all_ids, as_ids)
    return web.json_response(_envelope(state, "text_completion", [choice], len(ids), len(out_ids)))


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    return [stop] if isinstance(stop, str) else [str(x) for x in (stop or [])]


def _until_stop(m: HFModel, gen: Iterator[Step], stops: list[str]) -> tuple[list[Step], str | None]:
    """Generated steps up to the first stop string; the text cut before it (None when none was hit)."""
    steps: list[Step] = []
    for step in gen:
        steps.append(step)
        if stops:
            text = m.decode([s.token_id for s in steps])
            hits = [text.index(x) for x in stops if x and x in text]
            if hits:
                return steps, text[: min(hits)]
    return steps, None


def _finish(m: HFModel, steps: list[Step], max_tokens: int, ignore_eos: bool) -> str:
    if steps and steps[-1].token_id in m.eos_ids and not ignore_eos:
        return "stop"
    return "length" if len(steps) >= max_tokens else "stop"


def _envelope(
    state: State, obj: str, choices: list[dict[str, Any]], n_prompt: int, n_out: int
) -> dict[str, Any]:
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": obj,
        "created": int(time.time()),
        "model": state["served"],
        "choices": choices,
        "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
    }


async def chat(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: messages through the chat template, streamed or not (400 without one)."""
    state: State = request.app["state"]
    m: HFModel = state["model"]
    if not m.has_chat_template:
        return _error(
            400,
            "this model's tokenizer has no chat template; use /v1/completions or give the "
            "model a chat_template file",
        )
    try:
        body = await request.json()
        max_tokens, temperature, _ = _params(body)
        ids = m.chat_ids(body["messages"])
    except (ValueError, TypeError, KeyError) as exc:
        return _error(400, f"invalid request: {exc}")
    if (msg := _check_len(state, ids, max_tokens)) is not None:
        return _error(400, msg)
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await _stream(request, state, ids, max_tokens, temperature, 0, include_usage, chat=True)
    stops = _stops(body)
    steps, cut = await _in_thread(
        state, lambda: _until_stop(m, m.generate(ids, max_tokens, 0, temperature), stops)
    )
    out_ids = [s.token_id for s in steps]
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": cut if cut is not None else m.decode(out_ids)},
        "finish_reason": "stop" if cut is not None else _finish(m, steps, max_tokens, False),
        "logprobs": None,
    }
    return web.json_response(_envelope(state, "chat.completion", [choice], len(ids), len(out_ids)))


async def _stream(
    request: web.Request,
    state: State,
    ids: list[int],
    max_tokens: int,
    temperature: float,
    top: int,
    include_usage: bool,
    *,
    chat: bool,
    ignore_eos: bool = False,
) -> web.StreamResponse:
    m: HFModel = state["model"]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    obj = "chat.completion.chunk" if chat else "text_completion"
    rid = f"cmpl-{uuid.uuid4().hex}"

    async def send(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> None:
        chunk: dict[str, Any] = {
            "id": rid,
            "object": obj,
            "created": int(time.time()),
            "model": state["served"],
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

    if chat:
        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    out_ids: list[int] = []
    steps: list[Step] = []
    shown = ""
    async with state["lock"]:
        async for step in _aiter(m.generate(ids, max_tokens, top, temperature, ignore_eos)):
            steps.append(step)
            out_ids.append(step.token_id)
            text = m.decode(out_ids)
            # Hold back an incomplete UTF-8 sequence until the next token completes it.
            delta = text[len(shown) :] if not text.endswith("\ufffd") else ""
            shown += delta
            piece: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                piece["delta"] = {"content": delta}
            else:
                piece["text"] = delta
                piece["logprobs"] = None
            await send([piece])
    final: dict[str, Any] = {"index": 0, "finish_reason": _finish(m, steps, max_tokens, ignore_eos)}
    if chat:
        final["delta"] = {}
    else:
        final.update(text="", logprobs=None)
    await send([final])
    if include_usage:
        await send(
            [],
            {
                "prompt_tokens": len(ids),
                "completion_tokens": len(out_ids),
                "total_tokens": len(ids) + len(out_ids),
            },
        )
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _aiter(gen: Iterator[Step]) -> AsyncIterator[Step]:
    """Run a blocking generator in a worker thread, one item at a time."""
    loop = asyncio.get_running_loop()
    done = object()
    while True:
        item = await loop.run_in_executor(None, next, gen, done)
        if not isinstance(item, Step):
            return
        yield item


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: the one served model, with its max_model_len."""
    state: State = request.app["state"]
    card = {
        "id": state["served"],
        "object": "model",
        "created": state["created"],
        "owned_by": "stackcert",
        "max_model_len": state["model"].max_model_len,
    }
    return web.json_response({"object": "list", "data": [card]})


async def health(request: web.Request) -> web.Response:
    """GET /health: an empty 200 once the model is loaded."""
    return web.Response(text="")


def build_app(model: HFModel, served: str, batch_size: int = 1) -> web.Application:
    """The aiohttp app; batch_size > 1 batches concurrent scoring requests (hf_batch.py)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    lock = asyncio.Lock()
    app["state"] = {"model": model, "served": served, "lock": lock, "created": int(time.time())}
    if batch_size > 1:
        app["state"]["batcher"] = ScoreBatcher(model, lock, batch_size)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main(argv: list[str]) -> int:
    """Command line: apply the operator selection, load the model, serve the OpenAI API until stopped."""
    ap = argparse.ArgumentParser(prog="stackcert.engines.hf_server")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer")
    ap.add_argument("--served-model-name", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--trust-remote-code", action="store_true")
    ap.add_argument("--chat-template")
    ap.add_argument("--batch-size", type=int, default=1, help="batch concurrent scoring requests")
    ap.add_argument("--attn-implementation", help="transformers attention: eager | sdpa | flash_attention_2")
    ap.add_argument("--operators", help="OperatorSelection as JSON")
    ap.add_argument("--effective-ops", help="where to write the effective operator list")
    args = ap.parse_args(argv)
    print("hf_server: loading model", args.model, flush=True)
    selection = json.loads(args.operators) if args.operators else None
    ops = apply_operators(selection, Path(args.effective_ops) if args.effective_ops else None)
    if ops is not None:
        print(f"hf_server: operators in effect: {len(ops)}", flush=True)
    model = HFModel(
        args.model,
        args.tokenizer or args.model,
        args.dtype,
        args.max_model_len,
        args.trust_remote_code,
        args.chat_template,
        args.attn_implementation,
    )
    impl = getattr(model.model.config, "_attn_implementation", None)
    print(f"hf_server: model loaded (attention {impl}); serving", flush=True)
    web.run_app(
        build_app(model, args.served_model_name, args.batch_size),
        host=args.host,
        port=args.port,
        print=lambda s: print(s, flush=True),
        access_log=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
