"""A FAKE language model behind a protocol-level FAKE `/v1/completions` server, for cross-scoring tests.

Not a real model: a tiny deterministic next-token function over a 12-token vocabulary, so tests can
construct exact ties, near ties, implausible continuations and degenerate loops by hand. It answers
greedy generation (logprobs, `return_tokens_as_token_ids`) and teacher-forced scoring (`echo`, with
a string prompt or a list of token ids) the way vLLM does. Token 0 is end-of-sequence; a string
prompt is tokenised as one token per character (`ord(ch) % 10 + 2`) after a BOS (token 1).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

V = 12
EOS, BOS = 0, 1
TRAP = 3  # once emitted, the reference model repeats it (a degenerate loop the model itself makes)

Logits = Callable[[list[int]], list[float]]


def reference_logits(ctx: list[int]) -> list[float]:
    """The reference model: a walk over tokens 4..11 that never repeats a token twice in a row;
    token TRAP, once in the context, is repeated forever; the walk ends after 20 tokens."""
    out = [-8.0] * V
    last = ctx[-1]
    if last == TRAP:
        out[TRAP] = 0.0
        return out
    if len(ctx) >= 30:
        out[EOS] = 0.0
        return out
    nxt = 4 + (len(ctx) * 5 + last) % 8
    if nxt == last:
        nxt = 4 + (nxt - 3) % 8
    out[nxt] = 0.0
    out[4 + (nxt - 3) % 8] = -1.0  # a runner-up one nat below
    return out


def tokenize(prompt: str) -> list[int]:
    """BOS, then one token per character."""
    return [BOS] + [ord(ch) % 10 + 2 for ch in prompt]


def _logsoftmax(x: list[float]) -> list[float]:
    m = max(x)
    z = m + math.log(sum(math.exp(v - m) for v in x))
    return [v - z for v in x]


class TableLM:
    """One fake stack: a logits function, greedy generation and scoring, and the requests it saw."""

    def __init__(self, logits: Logits = reference_logits, *, token_ids: bool = True) -> None:
        self.logits, self.token_ids = logits, token_ids
        self.requests: list[dict[str, Any]] = []

    def _name(self, tid: int) -> str:
        return f"token_id:{tid}" if self.token_ids else f"t{tid}"

    def _step(self, ctx: list[int], tid: int, k: int) -> tuple[float, dict[str, float]]:
        lp = _logsoftmax(self.logits(ctx))
        order = sorted(range(V), key=lambda i: (-lp[i], i))[:k]
        top = {self._name(i): lp[i] for i in order}
        top[self._name(tid)] = lp[tid]
        return lp[tid], top

    def greedy(self, ctx: list[int]) -> int:
        """argmax, lowest id first on an exact tie."""
        lp = self.logits(ctx)
        return max(range(V), key=lambda i: (lp[i], -i))

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        """The /v1/completions answer for one request body."""
        self.requests.append(body)
        prompt = body["prompt"]
        ids = [int(t) for t in prompt] if isinstance(prompt, list) else tokenize(str(prompt))
        k = body.get("logprobs")
        tokens: list[str] = []
        lps: list[float | None] = []
        tops: list[dict[str, float] | None] = []
        if body.get("echo"):
            tokens.append(self._name(ids[0]))
            lps.append(None)
            tops.append(None)
            for i in range(1, len(ids)):
                lp, top = self._step(ids[:i], ids[i], int(k or 1))
                tokens.append(self._name(ids[i]))
                lps.append(lp)
                tops.append(top)
        ctx, finish = list(ids), "length"
        for _ in range(int(body.get("max_tokens", 16))):
            tid = self.greedy(ctx)
            lp, top = self._step(ctx, tid, int(k or 1))
            if tid == EOS:
                finish = "stop"
                break
            tokens.append(self._name(tid))
            lps.append(lp)
            tops.append(top)
            ctx.append(tid)
        block = {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops} if k is not None else None
        choice = {"index": 0, "text": " ".join(tokens), "finish_reason": finish, "logprobs": block}
        n_out = len(ctx) - len(ids)
        usage = {"prompt_tokens": len(ids), "completion_tokens": n_out, "total_tokens": len(ctx)}
        return {"choices": [choice], "usage": usage}


@contextmanager
def serve(lm: TableLM) -> Iterator[str]:
    """Serve one fake stack on 127.0.0.1; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(lm.respond(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
