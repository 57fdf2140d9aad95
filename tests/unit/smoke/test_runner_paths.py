"""run_smoke's mapping of engine outcomes, with FAKE engine entry points (the real ones: tests/e2e)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stackcert.engines as engines
from stackcert.config import StackSpec
from stackcert.engines.base import Completion, EngineStartError, ModelRef, OfflineResult
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.smoke import SmokeOptions, run_smoke
from stackcert.status import Status

STACK = StackSpec(name="cand", engine="vllm", components=["flag_gems"])
BAD_ARG = Finding(
    step="launch",
    phase="starting",
    layer=Layer.L5_SERVING,
    component=Component.VLLM,
    category="bad_arg",
    signature="bad_arg: unrecognized arguments: --x <n>",
    message="unrecognized arguments: --x 1",
)


def _model(tmp_path: Path) -> ModelRef:
    return ModelRef(path=tmp_path, served_name="m", tokenizer=tmp_path)


def test_start_failure_is_a_located_fail_and_nothing_else_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextlib.contextmanager
    def fake_launch(*args: Any, **kwargs: Any) -> Iterator[Any]:
        raise EngineStartError("cand: bad arg", findings=[BAD_ARG], log_path=tmp_path / "server.log")
        yield

    monkeypatch.setattr(engines, "launch_server", fake_launch)
    result = run_smoke(STACK, _model(tmp_path), folder=tmp_path, options=SmokeOptions(offline=False))
    assert result.status == Status.FAIL
    (start,) = result.phase_b_serve.checks
    assert start.name == "start" and start.status == Status.FAIL
    assert start.finding is not None and start.finding.category == "bad_arg"
    assert (start.finding.step, start.finding.phase) == ("smoke", "serve")
    assert result.findings == [start.finding] and result.log_path == str(tmp_path / "server.log")


def test_start_stall_is_a_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stall = BAD_ARG.model_copy(update={"category": "stall", "message": "no log line for 240s"})

    @contextlib.contextmanager
    def fake_launch(*args: Any, **kwargs: Any) -> Iterator[Any]:
        raise EngineStartError("cand: stalled", findings=[stall])
        yield

    monkeypatch.setattr(engines, "launch_server", fake_launch)
    result = run_smoke(STACK, _model(tmp_path), folder=tmp_path, options=SmokeOptions(offline=False))
    assert result.status == Status.TIMEOUT


def test_offline_phase_checks_quality_and_expectations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [" 12+7 = 20\nQuestion:", " Paris, the city of light.", " the the the the the the the the"]

    def fake_offline(stack: StackSpec, model: ModelRef, prompts: list[str], **kw: Any) -> OfflineResult:
        completions = [
            Completion(prompt=p, text=t, finish_reason="length") for p, t in zip(prompts, texts, strict=True)
        ]
        return OfflineResult(stack=stack.name, engine=stack.engine, ok=True, completions=completions)

    monkeypatch.setattr(engines, "run_offline", fake_offline)
    opts = SmokeOptions(serve=False)
    result = run_smoke(STACK, _model(tmp_path), folder=tmp_path, options=opts)
    checks = {c.name: c for c in result.phase_a_offline.checks}
    assert checks["generate"].status == Status.PASS
    assert checks["quality:arithmetic"].status == Status.FAIL
    assert checks["quality:arithmetic"].finding.category == "wrong_answer"  # type: ignore[union-attr]
    assert checks["quality:capital"].status == Status.PASS
    assert checks["quality:story"].finding.layer == Layer.L6_NUMERICS  # type: ignore[union-attr]
    assert result.status == Status.FAIL and result.phase_b_serve.status == Status.SKIPPED
    assert result.output_sample == texts[0]


def test_offline_engine_failure_keeps_the_engine_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_offline(stack: StackSpec, model: ModelRef, prompts: list[str], **kw: Any) -> OfflineResult:
        return OfflineResult(stack=stack.name, engine=stack.engine, ok=False, findings=[BAD_ARG])

    monkeypatch.setattr(engines, "run_offline", fake_offline)
    result = run_smoke(STACK, _model(tmp_path), folder=tmp_path, options=SmokeOptions(serve=False))
    (generate,) = result.phase_a_offline.checks
    assert generate.status == Status.FAIL and generate.finding is not None
    assert generate.finding.category == "bad_arg" and generate.finding.phase == "offline"


def test_effective_ops_are_read_from_the_engine_record(tmp_path: Path) -> None:
    from stackcert.jsonio import write_json_atomic
    from stackcert.smoke.runner import read_effective_ops

    assert read_effective_ops(tmp_path) is None
    write_json_atomic(tmp_path / "server.json", {"stack": "x", "effective_ops": None})
    assert read_effective_ops(tmp_path) is None
    write_json_atomic(tmp_path / "effective_ops.json", {"requested": {}, "effective": ["mm", "rms_norm"]})
    assert read_effective_ops(tmp_path) == ["mm", "rms_norm"]
