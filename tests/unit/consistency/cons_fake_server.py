"""A protocol-level FAKE of an OpenAI `/v1/completions` server, for client and pipeline unit tests.

Tokens are characters; log-probs are a fixed function of position, so two fakes with the same
`skew` agree exactly. `logprobs=False` answers like a server without log-prob support (the field is
null), `skew` shifts the candidate's numbers, `answer` is what a generation returns.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _block(text: str, top_k: int, skew: float) -> dict[str, Any]:
    tokens = [f"token_id:{ord(ch)}" for ch in text]
    lps = [-0.1 - 0.01 * (i % 7) - skew for i in range(len(text))]
    tops = [
        {t: lp, "token_id:1": lp - 2.0, "token_id:2": lp - 3.0} for t, lp in zip(tokens, lps, strict=True)
    ]
    return {
        "tokens": tokens,
        "token_logprobs": lps,
        "top_logprobs": [dict(list(t.items())[: max(1, top_k)]) for t in tops],
        "text_offset": list(range(len(text))),
    }


class FakeCompletions:
    def __init__(self, *, logprobs: bool = True, skew: float = 0.0, answer: str = " 42") -> None:
        self.logprobs, self.skew, self.answer = logprobs, skew, answer
        self.requests: list[dict[str, Any]] = []

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        prompt = str(body.get("prompt", ""))
        k = int(body.get("logprobs") or 0)
        if body.get("echo"):
            text, prompt_tokens = "\x02" + prompt + "!", len(prompt) + 1  # BOS, prompt, one generated
        else:
            text, prompt_tokens = self.answer[: int(body.get("max_tokens", 16))], len(prompt) + 1
        block = _block(text, k, self.skew) if self.logprobs and body.get("logprobs") is not None else None
        if block and body.get("echo"):
            block["token_logprobs"][0] = None
            block["top_logprobs"][0] = None
        choice = {"index": 0, "text": text, "finish_reason": "length", "logprobs": block}
        return {"choices": [choice], "usage": {"prompt_tokens": prompt_tokens}}


@contextmanager
def serve(fake: FakeCompletions) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # /v1/models, for endpoint stacks
            data = json.dumps({"object": "list", "data": [{"id": "fake"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(fake.respond(body)).encode()
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
