"""Fuzzing every client that reads a server's answer against a raw fake server.

For each client (bench, smoke checks, consistency, readiness, endpoint) and each answer: no exception
escapes, the call ends within its deadline plus slack, memory stays bounded by the caps, and the
request fails if and only if the answer is malformed. Two layers: the named corpus (every
malformation once per client, deterministic) and hypothesis (random valid variations, alone or
with a random fast malformation).
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fakes.raw_http import RawFakeServer
from tests.unit.fuzz.corpus import Case, Variation, mutations, valid_case
from tests.unit.fuzz.drivers import CLIENTS, TIMEOUT_S

from stackcert import answers
from stackcert.bench import http1

SLACK_S = 4.0  # generous: two shared cores
SMALL = answers.AnswerLimits(
    json_body=512 << 10, stream_body=512 << 10, line=64 << 10, error_body=16 << 10, text_chars=64 << 10
)
ENDLESS = {"endless_body", "endless_line", "http_error_endless"}


@pytest.fixture(scope="module")
def fake() -> Iterator[RawFakeServer]:
    with RawFakeServer() as server:
        yield server


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small caps and a short [DONE] grace keep the endless cases fast; the defaults are tested below."""
    for name in ("json_body", "stream_body", "line", "error_body", "text_chars"):
        monkeypatch.setattr(answers.LIMITS, name, getattr(SMALL, name))
    monkeypatch.setattr(http1, "DONE_GRACE_S", 0.3)


def play(
    fake: RawFakeServer, client: str, case: Case, tmp: Path, *, measure: bool = False
) -> tuple[bool, str]:
    """Run one client against one answer; check the time bound (and the memory bound when asked)."""
    fake.script = case.script()
    _, drive = CLIENTS[client]
    if measure:
        tracemalloc.start()
    started = time.monotonic()
    try:
        ok, reason = drive(fake.base_url, tmp)
    finally:
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1] if measure else 0
        if measure:
            tracemalloc.stop()
    assert elapsed < 2 * TIMEOUT_S + SLACK_S, f"{client} took {elapsed:.1f}s on {case.label}"
    if measure:  # an uncapped client holds hundreds of MiB by its deadline
        assert peak < 24 * SMALL.stream_body, f"{client} peaked at {peak >> 20} MiB on {case.label}"
    return ok, reason


CORPUS = [
    (client, name)
    for client, (kind, _) in CLIENTS.items()
    for name in ["valid", *mutations(kind, Variation())]
]


@pytest.mark.parametrize(("client", "name"), CORPUS, ids=[f"{c}-{n}" for c, n in CORPUS])
def test_corpus(fake: RawFakeServer, tmp_path: Path, client: str, name: str) -> None:
    kind, _ = CLIENTS[client]
    v = Variation()
    case = valid_case(kind, v) if name == "valid" else mutations(kind, v)[name](random.Random(name))
    ok, reason = play(fake, client, case, tmp_path, measure=name in ENDLESS)
    assert ok is not case.malformed, f"{client} on {name}: ok={ok} ({reason})"
    if name in {"endless_body", "endless_line"} and client in {"bench", "smoke_stream", "smoke_completions"}:
        assert "limit" in reason, reason  # the cap is named in the reason


variations = st.builds(
    Variation,
    framing=st.sampled_from(["chunked", "length", "close"]),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
    pieces=st.integers(min_value=1, max_value=6),
    usage=st.sampled_from(["none", "final", "continuous"]),
    extras=st.booleans(),
    crlf=st.booleans(),
    spaced=st.booleans(),
)


def _fast(kind: str) -> list[str]:
    slow = {"drip", "silent", "no_answer", "done_then_endless"}
    return ["valid", "valid", *(n for n in mutations(kind, Variation()) if n not in slow)]


@pytest.mark.parametrize("client", list(CLIENTS))
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,  # no .hypothesis folder: the examples are fixed by derandomize
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(v=variations, pick=st.integers(min_value=0, max_value=10_000), seed=st.integers(0, 2**16))
def test_fuzz(fake: RawFakeServer, tmp_path: Path, client: str, v: Variation, pick: int, seed: int) -> None:
    kind, _ = CLIENTS[client]
    names = _fast(kind)
    name = names[pick % len(names)]
    case = valid_case(kind, v) if name == "valid" else mutations(kind, v)[name](random.Random(seed))
    ok, reason = play(fake, client, case, tmp_path)
    assert ok is not case.malformed, f"{client} on {name} {v}: ok={ok} ({reason})"
