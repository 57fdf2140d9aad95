"""The fuzz corpus: valid answers with random variations, and named malformations of them.

Every answer is a `Case`: the script the raw fake server plays and whether the answer is malformed.
A valid answer varies in what a correct server may vary (framing, chunk boundaries, SSE comments,
`data:` spacing, CRLF, extra fields, usage or not); a malformation is something no correct server
sends. The oracle of every client: the request fails if and only if the answer is malformed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from tests.fakes.raw_http import Close, Endless, Pause, Reset, Step
from tests.unit.fuzz.valid import (
    GOOD,
    MODEL,
    Case,
    Variation,
    completion,
    http,
    models_answer,
    sse,
    stream_events,
)

__all__ = ["GOOD", "MODEL", "Case", "Variation", "http", "mutations", "sse", "stream_events", "valid_case"]


# -- malformations -----------------------------------------------------------------------------------
WRONG_VALUES: list[Any] = [5, 1.5, True, {"a": 1}, [5], ["x"]]  # no string: "x" is a valid text


def _mutate_choice(obj: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    obj["choices"][0][key] = value
    return obj


def _first_content(events: list[Any]) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, dict) and e.get("choices"))


def _bad_usage(rng: random.Random) -> Any:
    return rng.choice(
        [
            {"completion_tokens": -5},
            {"completion_tokens": 10**9},
            {"completion_tokens": "7"},
            {"prompt_tokens": -3},
            "x",
            5,
        ]
    )


def _non_utf8(body: bytes) -> bytes:
    """Invalid UTF-8 inside a JSON string of the body."""
    word = b"Paris" if b"Paris" in body else b"fake-model"
    return body.replace(word, word[:1] + b"\xff\xfe" + word[1:], 1)


def _endless(kind: str, v: Variation) -> list[Step]:
    if kind == "stream":  # valid content chunks, forever
        return [Endless(sse([stream_events(v)[0]], v) * 64)]
    return [b'{"choices": [{"text": "', Endless(b"a" * 65536)]


def _transport_mutations(
    body: bytes, v: Variation, ctype: str, kind: str
) -> dict[str, Callable[[random.Random], Case]]:
    """Malformations of the HTTP exchange itself, common to every kind of answer."""
    head_ok = f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n".encode()
    deep = b"[" * 200_000 + b"]" * 200_000

    def truncated(rng: random.Random) -> Case:
        end = body.find(b"data: [DONE]") if kind == "stream" else len(body)
        end = body.find(b"data:[DONE]") if end < 0 else end
        cut = rng.randrange(0, max(1, end - 1))
        return Case("truncated", [head_ok + b"Connection: close\r\n\r\n", body[:cut], Close()], True)

    def reset(rng: random.Random) -> Case:
        cut = rng.randrange(0, max(1, len(body) - 8))
        return Case(
            "reset",
            [
                head_ok + b"Transfer-Encoding: chunked\r\n\r\n",
                b"%x\r\n%s\r\n" % (cut, body[:cut]) if cut else b"",
                Reset(),
            ],
            True,
        )

    return {
        "truncated": truncated,
        "reset": reset,
        "reset_at_once": lambda rng: Case("reset_at_once", [Reset()], True),
        "closed_at_once": lambda rng: Case("closed_at_once", [Close()], True),
        "html_200": lambda rng: Case(
            "html_200", http(b"<html><body>502 Bad Gateway</body></html>", v, ctype="text/html"), True
        ),
        "wrong_content_type": lambda rng: Case("wrong_content_type", http(body, v, ctype="text/plain"), True),
        "http_error": lambda rng: Case(
            "http_error",
            http(
                json.dumps({"error": {"message": "\x1b[31mboom\x1b[0m"}}).encode(),
                v,
                status=rng.choice([400, 401, 500, 503]),
                ctype="application/json",
            ),
            True,
        ),
        "http_error_endless": lambda rng: Case(
            "http_error_endless",
            [
                b"HTTP/1.1 500 X\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                Endless(b"e" * 65536),
            ],
            True,
        ),
        "non_utf8": lambda rng: Case("non_utf8", http(_non_utf8(body), v, ctype=ctype), True),
        "deep_nesting": lambda rng: Case(
            "deep_nesting",
            http((b"data: " + deep + b"\n\ndata: [DONE]\n\n") if kind == "stream" else deep, v, ctype=ctype),
            True,
        ),
        "bad_chunked": lambda rng: Case(
            "bad_chunked", [head_ok + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body[:10], Close()], True
        ),
        "endless_body": lambda rng: Case(
            "endless_body", [head_ok + b"Connection: close\r\n\r\n", *_endless(kind, v)], True
        ),
        "endless_line": lambda rng: Case(
            "endless_line", [head_ok + b"Connection: close\r\n\r\n", b"data: ", Endless(b"b" * 65536)], True
        ),
        "drip": lambda rng: Case(
            "drip",
            [head_ok + b"Connection: close\r\n\r\n", Endless(body[:1] or b" ", every_s=0.2)],
            True,
            slow=True,
        ),
        "silent": lambda rng: Case(
            "silent", [head_ok + b"Connection: close\r\n\r\n", Pause(30)], True, slow=True
        ),
        "no_answer": lambda rng: Case("no_answer", [Pause(30)], True, slow=True),
    }


def _stream_mutations(v: Variation) -> dict[str, Callable[[random.Random], Case]]:
    events = stream_events(v)
    ctype = "text/event-stream"

    def case(label: str, evs: list[Any], *, var: Variation = v) -> Case:
        return Case(label, http(sse(evs, var), var, ctype=ctype), True)

    def insert(ev: Any, rng: random.Random) -> list[Any]:
        evs = list(events)
        evs.insert(rng.randrange(0, len(evs)), ev)
        return evs

    def at_content(key: str, rng: random.Random) -> list[Any]:
        evs = list(events)
        i = _first_content(evs)
        evs[i] = _mutate_choice(
            evs[i], key, rng.choice(WRONG_VALUES if key == "text" else [[], 5, {"a": 1}, True])
        )
        return evs

    def usage(rng: random.Random) -> list[Any]:
        evs = list(events)
        i = _first_content(evs)
        evs[i] = {**evs[i], "usage": _bad_usage(rng)}
        return evs

    def no_done(rng: random.Random) -> Case:
        evs = [e for e in events if e != "[DONE]"]
        evs = [
            _mutate_choice(e, "finish_reason", None) if isinstance(e, dict) and e.get("choices") else e
            for e in evs
        ]
        return case(
            "no_done", evs, var=Variation(**{**v.__dict__, "framing": rng.choice(["close", "chunked"])})
        )

    head_ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    return {
        "data_not_object": lambda rng: case("data_not_object", insert(rng.choice([None, 42, "x", [1]]), rng)),
        "choices_wrong_type": lambda rng: case(
            "choices_wrong_type",
            [{**events[0], "choices": rng.choice(["x", 5, {"a": 1}, [5], ["x"], True])}, *events[1:]],
        ),
        "text_wrong_type": lambda rng: case("text_wrong_type", at_content("text", rng)),
        "finish_wrong_type": lambda rng: case("finish_wrong_type", at_content("finish_reason", rng)),
        "usage_wrong": lambda rng: case("usage_wrong", usage(rng)),
        "error_event_with_choices": lambda rng: case(
            "error_event_with_choices", insert({**events[0], "error": {"message": "engine died"}}, rng)
        ),
        "error_event": lambda rng: case("error_event", insert({"error": {"message": "engine died"}}, rng)),
        "garbage_line": lambda rng: case(
            "garbage_line", insert(rng.choice([b"hello", b"<html>", b"{}"]), rng)
        ),
        "data_after_done": lambda rng: case("data_after_done", [*events, events[0]]),
        "no_done": no_done,
        "done_then_endless": lambda rng: Case(
            "done_then_endless",
            [head_ok, sse(events, v), Endless(b": ping\n\n", every_s=0.05)],
            True,
            slow=True,
        ),
    }


def _json_mutations(v: Variation, logprobs: bool) -> dict[str, Callable[[random.Random], Case]]:
    answer = completion(v, logprobs=logprobs)

    def case(label: str, obj: Any) -> Case:
        return Case(label, http(json.dumps(obj).encode(), v), True)

    out: dict[str, Callable[[random.Random], Case]] = {
        "not_object": lambda rng: case("not_object", rng.choice([None, 42, "x", [answer]])),
        "choices_wrong_type": lambda rng: case(
            "choices_wrong_type", {**answer, "choices": rng.choice(["x", 5, {"a": 1}, [5], ["x"], [], None])}
        ),
        "text_wrong_type": lambda rng: case(
            "text_wrong_type", _mutate_choice(answer, "text", rng.choice(WRONG_VALUES))
        ),
        "finish_wrong_type": lambda rng: case(
            "finish_wrong_type", _mutate_choice(answer, "finish_reason", rng.choice([[], 5, {"a": 1}, True]))
        ),
        "usage_wrong": lambda rng: case("usage_wrong", {**answer, "usage": _bad_usage(rng)}),
        "error_with_choices": lambda rng: case("error_with_choices", {**answer, "error": {"message": "x"}}),
    }
    if logprobs:

        def lp(rng: random.Random) -> Case:
            bad = json.loads(json.dumps(answer))
            block = bad["choices"][0]["logprobs"]
            which = rng.choice(["token_logprobs", "top_logprobs", "tokens"])
            block[which][rng.randrange(len(block[which]))] = rng.choice(
                {
                    "token_logprobs": ["x", 5.0, [1]],
                    "top_logprobs": ["x", {"a": "b"}, {"a": 3.0}],
                    "tokens": [5, None, [1]],
                }[which]
            )
            return case("logprobs_wrong", bad)

        out["logprobs_wrong"] = lp
    return out


def _models_mutations(v: Variation) -> dict[str, Callable[[random.Random], Case]]:
    answer = models_answer(v)

    def case(label: str, obj: Any) -> Case:
        return Case(label, http(json.dumps(obj).encode(), v), True)

    return {
        "not_object": lambda rng: case("not_object", rng.choice([None, 42, "x", [answer]])),
        "data_wrong_type": lambda rng: case(
            "data_wrong_type", {"data": rng.choice(["x", 5, {"a": 1}, None, [5], ["x"]])}
        ),
        "id_wrong_type": lambda rng: case(
            "id_wrong_type", {"data": [{**answer["data"][0], "id": rng.choice([5, None, [MODEL], {"a": 1}])}]}
        ),
        "model_missing": lambda rng: case("model_missing", {"data": [{"id": "other-a"}, {"id": "other-b"}]}),
    }


def valid_case(kind: str, v: Variation) -> Case:
    """The valid answer of `kind` (stream | json | json_logprobs | models) with variation `v`."""
    if kind == "stream":
        return Case("valid", http(sse(stream_events(v), v), v, ctype="text/event-stream"), False)
    if kind == "models":
        return Case("valid", http(json.dumps(models_answer(v)).encode(), v), False)
    return Case("valid", http(json.dumps(completion(v, logprobs=kind == "json_logprobs")).encode(), v), False)


def mutations(kind: str, v: Variation) -> dict[str, Callable[[random.Random], Case]]:
    """Every named malformation of an answer of `kind`."""
    if kind == "stream":
        body = sse(stream_events(v), v)
    elif kind == "models":
        body = json.dumps(models_answer(v)).encode()
    else:
        body = json.dumps(completion(v, logprobs=kind == "json_logprobs")).encode()
    ctype = "text/event-stream" if kind == "stream" else "application/json"
    out = _transport_mutations(body, v, ctype, kind)
    if kind == "stream":
        out.update(_stream_mutations(v))
    elif kind == "models":
        out.update(_models_mutations(v))
    else:
        out.update(_json_mutations(v, kind == "json_logprobs"))
    return out
