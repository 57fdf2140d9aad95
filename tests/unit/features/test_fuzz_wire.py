"""The probes' and the gates' answer readers against the fuzz corpus of tests/unit/fuzz (a raw fake
server): no exception escapes, the time is bounded, and a request fails if and only if the answer
is malformed."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from tests.fakes.raw_http import RawFakeServer
from tests.unit.fuzz.corpus import MODEL, Case, Variation, mutations, valid_case
from tests.unit.fuzz.test_fuzz_clients import ENDLESS, SLACK_S, SMALL, variations

from stackcert import answers
from stackcert.config import StackSpec
from stackcert.evidence.findings import Finding
from stackcert.features.gates import models_listed
from stackcert.features.wire import Wire, completion_text

TIMEOUT_S = 0.5


class _Server:
    """The Server protocol over the raw fake's URL."""

    def __init__(self, url: str) -> None:
        self.stack = StackSpec(name="raw", engine="endpoint", url=url)
        self.base_url = url
        self.served_model = MODEL
        self.log_path: Path | None = None

    def alive(self) -> bool:
        return True

    def findings(self) -> list[Finding]:
        return []


def _completion(url: str) -> tuple[bool, str]:
    with Wire(_Server(url), timeout=TIMEOUT_S) as wire:
        reply = wire.post("/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 16})
        text = completion_text(reply, 16)
    return text is not None, reply.evidence.error or ""


def _models(url: str) -> tuple[bool, str]:
    with Wire(_Server(url), timeout=TIMEOUT_S) as wire:
        evidence = models_listed(wire, MODEL)
    return evidence.ok, evidence.error or ""


DRIVERS = {"completion": ("json", _completion), "models": ("models", _models)}


@pytest.fixture(scope="module")
def fake() -> Iterator[RawFakeServer]:
    with RawFakeServer() as server:
        yield server


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("json_body", "stream_body", "line", "error_body", "text_chars"):
        monkeypatch.setattr(answers.LIMITS, name, getattr(SMALL, name))


def _play(fake: RawFakeServer, driver: str, case: Case) -> tuple[bool, str]:
    fake.script = case.script()
    started = time.monotonic()
    ok, reason = DRIVERS[driver][1](fake.base_url)
    elapsed = time.monotonic() - started
    assert elapsed < 2 * TIMEOUT_S + SLACK_S, f"{driver} took {elapsed:.1f}s on {case.label}"
    return ok, reason


CORPUS = [(d, n) for d, (kind, _) in DRIVERS.items() for n in ["valid", *mutations(kind, Variation())]]


@pytest.mark.parametrize(("driver", "name"), CORPUS, ids=[f"{d}-{n}" for d, n in CORPUS])
def test_corpus(fake: RawFakeServer, driver: str, name: str) -> None:
    kind, _ = DRIVERS[driver]
    v = Variation()
    case = valid_case(kind, v) if name == "valid" else mutations(kind, v)[name](random.Random(name))
    ok, reason = _play(fake, driver, case)
    assert ok is not case.malformed, f"{driver} on {name}: ok={ok} ({reason})"
    if case.malformed:
        assert reason
    if name in ENDLESS - {"http_error_endless"}:
        assert "limit" in reason or "no complete answer" in reason, reason


@pytest.mark.parametrize("driver", list(DRIVERS))
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(v=variations)
def test_fuzz_valid_variations_pass(fake: RawFakeServer, driver: str, v: Variation) -> None:
    kind, _ = DRIVERS[driver]
    ok, reason = _play(fake, driver, valid_case(kind, v))
    assert ok, f"{driver} refused a valid answer {v}: {reason}"
