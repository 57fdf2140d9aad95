"""The ledger: transitions, resume semantics, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stackcert.errors import UsageError
from stackcert.pipeline.ledger import Ledger
from stackcert.runmodel.layout import STATE_FILE
from stackcert.status import Status

PLAN = [("a", "step a"), ("b", "step b"), ("c", "step c")]


def test_transitions_are_recorded_with_times_and_duration(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path, PLAN)
    assert [r.status for r in led.records()] == [Status.PENDING] * 3
    led.start("a")
    on_disk = json.loads((tmp_path / STATE_FILE).read_text())
    assert on_disk["steps"]["a"]["status"] == "running"
    led.finish("a", Status.PASS, result_file="a.json")
    rec = led.get("a")
    assert rec.status is Status.PASS and rec.started and rec.finished and rec.duration_s is not None
    assert rec.attempts == 1 and rec.result_file == "a.json"
    led.skip("b", "not available")
    assert led.get("b").status is Status.SKIPPED and led.get("b").reason == "not available"
    assert led.first_unfinished() == "c"


def test_finish_needs_a_final_status_and_done_steps_cannot_restart(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path, PLAN)
    led.start("a")
    with pytest.raises(ValueError):
        led.finish("a", Status.RUNNING)
    led.finish("a", Status.FAIL, "boom")
    with pytest.raises(RuntimeError):
        led.start("a")


def test_reopen_resets_running_to_pending_and_keeps_done_steps(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path, PLAN)
    led.start("a")
    led.finish("a", Status.PASS)
    finished = led.get("a").finished
    led.start("b")  # the process dies here (no finish)
    again = Ledger.open(tmp_path)
    assert again.status("a") is Status.PASS and again.get("a").finished == finished
    assert again.status("b") is Status.PENDING and "interrupted" in again.get("b").reason
    assert again.first_unfinished() == "b"


def test_interrupt_marks_pending_and_flags_the_run(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path, PLAN)
    led.start("a")
    led.interrupt("a")
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["steps"]["a"]["status"] == "pending" and state["interrupted"] is True


def test_a_result_file_of_another_shape_reads_back_as_nothing(tmp_path: Path) -> None:
    """A typed result is read back into its model, or not at all (never a half-filled guess)."""
    from stackcert.runmodel.results import CompareResult, load_result

    path = tmp_path / "compare.json"
    path.write_text('{"schema_version": "1", "kind": "compare", "perf_ratio": 0.9, "notes": ["n"]}')
    assert load_result(path, "compare") == CompareResult(perf_ratio=0.9, notes=["n"])
    path.write_text('{"perf_ratio": "fast"}')
    assert load_result(path, "compare") is None
    path.write_text("{not json")
    assert load_result(path, "compare") is None
    assert load_result(tmp_path / "missing.json", "compare") is None


def test_ensure_steps_adds_new_steps_without_losing_old_ones(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path, PLAN[:2])
    led.start("a")
    led.finish("a", Status.PASS)
    led.ensure_steps(PLAN)
    assert [r.id for r in led.records()] == ["a", "b", "c"] and led.status("a") is Status.PASS


def test_writes_are_atomic_a_failed_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    led = Ledger.create(tmp_path, PLAN)
    before = (tmp_path / STATE_FILE).read_text()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        led.start("a")
    monkeypatch.undo()
    assert (tmp_path / STATE_FILE).read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temp file left behind


def test_open_without_state_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        Ledger.open(tmp_path)
