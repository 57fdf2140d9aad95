"""Weight gates: request-level serving checks (FAKE server), the dummy start's engine args, the
dummy-vs-real matrix and the non-equivalence statements."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.features.fake_features_server import FakeFeaturesServer

from stackcert.config import OperatorSelection, StackSpec
from stackcert.engines.base import EngineStartError, ModelRef
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.features import (
    dummy_stack,
    dummy_weight_gate,
    gates_document,
    real_weight_gate,
    serving_check,
    weight_gates,
)
from stackcert.features import gates as gates_mod
from stackcert.status import Status

MODEL = ModelRef(path=Path("/nonexistent"), served_name="fake-model", tokenizer=Path("/nonexistent"))


def test_serving_check_passes_on_a_served_model_with_text() -> None:
    with FakeFeaturesServer() as fake:
        check = serving_check(fake, timeout=5)
    assert check.status is Status.PASS and check.passed
    assert check.models_listed and check.completion_ok
    assert check.output_excerpt == " Paris, the city of light"
    assert [(r.method, r.path, r.status) for r in check.requests] == [
        ("GET", "/v1/models", 200),
        ("POST", "/v1/completions", 200),
    ]


@pytest.mark.parametrize(
    ("setup", "status", "words"),
    [
        ({"models_lists": False}, Status.FAIL, "'fake-model' not among"),
        ({"hostile": "empty"}, Status.FAIL, "empty output"),
        ({"hostile": "html"}, Status.FAIL, "is not JSON"),
        ({"hostile": "error200"}, Status.FAIL, "engine dead"),
        ({"hostile": "hang"}, Status.TIMEOUT, "no complete answer within 1s"),
    ],
)
def test_serving_check_fails_at_request_level(setup: dict[str, Any], status: Status, words: str) -> None:
    with FakeFeaturesServer() as fake:
        for key, value in setup.items():
            setattr(fake.behaviour, key, value)
        check = serving_check(fake, timeout=1)
    assert check.status is status and not check.passed
    assert words in check.detail


def test_real_gate_refuses_a_dummy_weights_server() -> None:
    with FakeFeaturesServer(argv=["vllm", "--load-format", "dummy"]) as fake:
        gate = real_weight_gate(fake)
    assert gate.stage == "real" and gate.load_format == "dummy"
    assert gate.status is Status.FAIL and gate.check is not None and gate.check.passed
    assert "dummy weights: it cannot be stage B" in gate.check.detail


def test_real_gate_on_real_weights() -> None:
    with FakeFeaturesServer(argv=["vllm", "--max-model-len", "1024"]) as fake:
        gate = real_weight_gate(fake)
    assert gate.status is Status.PASS and gate.load_format == "auto" and gate.started


def test_dummy_stack_keeps_the_stack_and_adds_load_format() -> None:
    stack = StackSpec(name="c", engine="vllm", engine_args={"enforce_eager": False, "max_num_seqs": 4})
    dummy = dummy_stack(stack)
    assert dummy.engine_args == {"enforce_eager": False, "max_num_seqs": 4, "load_format": "dummy"}
    assert stack.engine_args == {"enforce_eager": False, "max_num_seqs": 4}  # not changed in place


def test_dummy_gate_starts_with_load_format_dummy_and_checks_requests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    launched: list[StackSpec] = []
    with FakeFeaturesServer(argv=["vllm", "--load-format", "dummy"]) as fake:

        @contextlib.contextmanager
        def fake_launch(stack: StackSpec, model: ModelRef, **kw: Any) -> Iterator[FakeFeaturesServer]:
            launched.append(stack)
            assert kw["run_dir"] == tmp_path
            yield fake

        monkeypatch.setattr(gates_mod, "launch_server", fake_launch)
        stack = StackSpec(name="cand", engine="vllm", engine_args={"enforce_eager": True})
        gate = dummy_weight_gate(stack, MODEL, run_dir=tmp_path)
    [started] = launched
    assert started.engine_args["load_format"] == "dummy" and started.engine_args["enforce_eager"] is True
    assert gate.stage == "dummy" and gate.started and gate.status is Status.PASS
    assert gate.argv == ["vllm", "--load-format", "dummy"]
    assert gate.check is not None and gate.check.completion_ok


def test_dummy_gate_that_does_not_start_keeps_the_findings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    finding = Finding(
        step="launch",
        phase="loading_weights",
        layer=Layer.L2_MODEL,
        component=Component.VLLM,
        category="crash",
        signature="sig",
        message="dummy loader failed",
    )

    @contextlib.contextmanager
    def failing(stack: StackSpec, model: ModelRef, **kw: Any) -> Iterator[None]:
        raise EngineStartError(
            "cand: dummy loader failed", findings=[finding], log_path=tmp_path / "server.log"
        )
        yield

    monkeypatch.setattr(gates_mod, "launch_server", failing)
    gate = dummy_weight_gate(StackSpec(name="cand", engine="vllm"), MODEL, run_dir=tmp_path)
    assert gate.status is Status.FAIL and not gate.started
    assert [f.message for f in gate.findings] == ["dummy loader failed"]
    assert gate.log_path == str(tmp_path / "server.log")


def test_dummy_gate_is_skipped_for_engines_without_load_format(tmp_path: Path) -> None:
    gate = dummy_weight_gate(StackSpec(name="hf", engine="transformers"), MODEL, run_dir=tmp_path)
    assert gate.status is Status.SKIPPED and not gate.started
    assert gate.check is not None and "vLLM option" in gate.check.detail


def test_non_equivalence_names_the_operator_library_per_stack_pair() -> None:
    ref = StackSpec(name="native", engine="vllm")
    cand = StackSpec(name="flaggems", engine="vllm", operators=OperatorSelection(library="flag_gems"))
    gates = weight_gates(cand, stage_a=None, stage_b=None, reference=ref)
    pair = [n for n in gates.non_equivalence if n.startswith("flaggems vs native")]
    assert len(pair) == 1
    assert "aten::uniform_" in pair[0] and "no numeric A/B between flaggems and native" in pair[0]
    plain = weight_gates(ref, stage_a=None, stage_b=None)
    assert len(plain.non_equivalence) == 2 and not any("uniform_" in n for n in plain.non_equivalence)
    assert all("random" in n for n in plain.non_equivalence)


def test_non_equivalence_when_the_random_operators_are_left_out() -> None:
    ops = OperatorSelection(library="flag_gems", exclude=["uniform_", "normal_"])
    cand = StackSpec(name="fg", engine="vllm", operators=ops)
    notes = weight_gates(cand, stage_a=None, stage_b=None).non_equivalence
    assert any("without its random-number operators" in n for n in notes)


def test_pass_needs_stage_b_and_the_matrix_shows_both(tmp_path: Path) -> None:
    with FakeFeaturesServer(argv=["vllm"]) as fake:
        stage_b = real_weight_gate(fake)
    from stackcert.features import WeightGate

    stage_a = WeightGate(
        stage="dummy", stack="fake", load_format="dummy", status=Status.PASS, started=True, startup_s=56.2
    )
    only_a = weight_gates(StackSpec(name="fake", engine="vllm"), stage_a=stage_a, stage_b=None)
    assert not only_a.pass_allowed
    both = weight_gates(StackSpec(name="fake", engine="vllm"), stage_a=stage_a, stage_b=stage_b)
    assert both.pass_allowed
    rows = {r.aspect: (r.dummy, r.real) for r in both.matrix}
    assert rows["status"] == ("pass", "pass") and rows["startup"][0] == "56.2s"
    assert rows["verdict"] == ("never a PASS on its own", "required for any PASS")
    doc = gates_document(both)
    assert doc["kind"] == "weight-gates" and doc["stage_b"]["check"]["completion_ok"] is True
