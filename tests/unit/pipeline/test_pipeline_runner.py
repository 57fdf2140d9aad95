"""Step mechanics of the runner: deadlines, crashes, missing libraries, Ctrl-C, resume skipping."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from stackcert.env.probe import HostInfo
from stackcert.errors import ConfigError
from stackcert.pipeline.context import Outcome
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.runner import PLAN, Interrupted, Pipeline, call_with_deadline
from stackcert.runmodel.config import from_preset
from stackcert.runmodel.results import load_result
from stackcert.status import Status


@pytest.fixture
def pipe(tmp_path: Path) -> Pipeline:
    return Pipeline(from_preset("demo"), Ledger.create(tmp_path, PLAN))


def test_deadline_returns_value_or_times_out() -> None:
    assert call_with_deadline(lambda: Outcome(status=Status.PASS), 5, "x") == (
        True,
        Outcome(status=Status.PASS),
    )
    t0 = time.monotonic()
    ended, _ = call_with_deadline(lambda: time.sleep(10) or Outcome(status=Status.PASS), 0.3, "slow")  # type: ignore[func-returns-value]
    assert not ended and time.monotonic() - t0 < 2


HOST = HostInfo(python="3.11", python_executable="/p", arch="x86_64", os="Linux", disk_path="/", cpu_count=42)


def test_step_records_typed_result_and_is_not_redone(pipe: Pipeline, tmp_path: Path) -> None:
    calls = []

    def fn() -> Outcome:
        calls.append(1)
        return Outcome(status=Status.PASS, result=HOST)

    assert pipe.step("env", fn, 5) is Status.PASS
    assert pipe.ctx.results.env == HOST  # kept typed for the later steps
    finished = pipe.ledger.get("env").finished
    assert pipe.step("env", fn, 5) is Status.PASS and calls == [1]
    reopened = Ledger.open(tmp_path)
    record = reopened.get("env")
    assert record.finished == finished and record.result_file == "env.json"
    assert load_result(tmp_path / "env.json", "env") == HOST  # read back into the same model
    assert '"schema_version"' in (tmp_path / "env.json").read_text()  # the common envelope
    again = Pipeline(from_preset("demo"), reopened)
    again.ctx.load_done()
    assert again.ctx.results.env == HOST


def test_timeout_crash_and_bad_input(pipe: Pipeline, tmp_path: Path) -> None:
    stopped = []
    assert (
        pipe.step(
            "env",
            lambda: time.sleep(5) or Outcome(status=Status.PASS),
            0.2,  # type: ignore[func-returns-value]
            on_timeout=lambda: stopped.append(1),
        )
        is Status.TIMEOUT
    )
    assert stopped == [1] and "limit" in pipe.ledger.get("env").reason

    def crash() -> Outcome:
        raise ZeroDivisionError("oops")

    assert pipe.step("install", crash, 5) is Status.CRASH
    assert (tmp_path / "logs" / "install.traceback.txt").exists()

    def bad_input() -> Outcome:
        raise ConfigError("bad thing", where="x.yaml:3")

    assert pipe.step("compare", bad_input, 5) is Status.FAIL
    assert "x.yaml:3" in pipe.ledger.get("compare").reason


def test_skip_reason_records_skipped_without_running(pipe: Pipeline) -> None:
    assert pipe.step("bisect", lambda: pytest.fail("must not run"), 5, skip="not needed") is Status.SKIPPED


def test_ctrl_c_puts_the_step_back_to_pending(pipe: Pipeline, tmp_path: Path) -> None:
    # Ctrl-C as the terminal delivers it: Python's default SIGINT handler (an earlier test in the same
    # process may have left another one, e.g. an imported engine library), then a real SIGINT.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(Interrupted) as err:
            pipe.step("reference.bench", lambda: time.sleep(10) or Outcome(status=Status.PASS), 30)  # type: ignore[func-returns-value]
    finally:
        signal.signal(signal.SIGINT, previous)
    assert err.value.step == "reference.bench"
    led = Ledger.open(tmp_path)
    assert led.status("reference.bench") is Status.PENDING and led.first_unfinished() == "env"
