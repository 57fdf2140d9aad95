"""Weight gates and the feature matrix inside `stackcert run`: the wiring from the candidate's running
server to weights.json / features.json, the verdict (stage B is needed for PASS) and the report.
The server is the protocol-level FAKE OpenAI server (tests/unit/smoke); tests/e2e runs real vLLM."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from tests.unit.smoke.fake_openai_server import FakeOpenAIServer

from stackcert.engines.base import ModelRef
from stackcert.features.models import FeatureOptions
from stackcert.pipeline import adaptation
from stackcert.pipeline.context import Outcome
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.reporting import build_report, verdict_of
from stackcert.pipeline.runner import PLAN, Pipeline
from stackcert.report.render import render_html, render_markdown
from stackcert.runmodel.config import from_preset
from stackcert.runmodel.results import ResolvedModel
from stackcert.status import Status


@pytest.fixture
def pipe(tmp_path: Path) -> Pipeline:
    cfg = from_preset("demo", cuda=False)
    cfg.phases.features.options = FeatureOptions(budget_s=20, request_timeout_s=5, capacity_budget_s=1)
    pipe = Pipeline(cfg, Ledger.create(tmp_path, PLAN))
    (tmp_path / "m").mkdir()
    model = ModelRef(path=tmp_path / "m", served_name="fake-model", tokenizer=tmp_path / "m")
    pipe.ctx.results.model = ResolvedModel(model=model)
    return pipe


def _serving(pipe: Pipeline, server: FakeOpenAIServer) -> None:
    """The candidate's server is up in the run's pool, as after candidate.serve."""
    name = pipe.config.candidate
    pipe.ctx.pool._servers[name] = server  # type: ignore[assignment]
    pipe.ctx.pool._exits[name] = contextlib.ExitStack()
    for step in ("env", "install", "model", "reference.serve", "reference.smoke", "candidate.serve"):
        pipe.step(step, lambda: Outcome(status=Status.PASS), 5)


def test_features_and_weight_gate_b_on_the_running_candidate(pipe: Pipeline, tmp_path: Path) -> None:
    with FakeOpenAIServer("good", name=pipe.config.candidate) as server:
        _serving(pipe, server)
        assert pipe.step("features", lambda: adaptation.features_step(pipe.ctx), 60) is Status.PASS
        assert pipe.step("weights", lambda: adaptation.weights_step(pipe.ctx), 60) is Status.PASS
    matrix, gates = pipe.ctx.results.features, pipe.ctx.results.weights
    assert matrix is not None and len(matrix.features) == 9
    assert {r.outcome for r in matrix.features} <= {
        "supported",
        "unsupported",
        "not-applicable",
        "checkpoint-missing",
    }
    assert gates is not None and gates.pass_allowed and gates.stage_b is not None
    assert gates.stage_a is None  # stage A did not run in this test
    saved = json.loads((tmp_path / "features.json").read_text())  # written once, by the runner
    assert saved["kind"] == "features" and len(saved["features"]) == 9
    assert json.loads((tmp_path / "weights.json").read_text())["stage_b"]["status"] == "pass"
    report = build_report(pipe.ctx)
    md, html = render_markdown(report), render_html(report)
    assert "### Serving features" in md and "structured_output" in md and "### Weight gates" in md
    assert 'id="features"' in html and 'id="weight-gates"' in html


def test_a_failed_weight_gate_b_keeps_the_candidate_from_pass(pipe: Pipeline) -> None:
    with FakeOpenAIServer("empty", name=pipe.config.candidate) as server:  # HTTP 200, no text
        _serving(pipe, server)
        assert pipe.step("weights", lambda: adaptation.weights_step(pipe.ctx), 60) is Status.FAIL
    v = verdict_of(pipe.ctx)
    assert v.verdict.value == "PARTIAL"
    assert any(r.startswith("weight gate missed (real-weight gate") for r in v.reasons), v.reasons


def test_weight_gate_turned_off_is_not_required(pipe: Pipeline) -> None:
    pipe.config.phases.weights.enabled = False
    inputs_reasons = verdict_of(pipe.ctx).reasons
    assert not any("weight gate" in r for r in inputs_reasons)
