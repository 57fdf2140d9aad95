"""The run's bisect step on a vLLM candidate: the wiring from the ledger to bisect.json and the report.

Engines are FAKES here (a real vLLM start is ~70 s on this host; tests/e2e/test_vllm_engine_ops.py
runs the real one): `launch_server` fails a start whose active operators include `mul`, writing a
server log shaped like vLLM's under CUDA_LAUNCH_BLOCKING=1, and answers like the reference otherwise.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackcert.config import StackSpec
from stackcert.diagnose import answers
from stackcert.engines.base import EngineStartError, ModelRef
from stackcert.evidence.findings import Finding
from stackcert.pipeline import analysis
from stackcert.pipeline.context import Outcome
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.reporting import build_report
from stackcert.pipeline.runner import PLAN, Pipeline
from stackcert.runmodel.config import from_preset
from stackcert.runmodel.results import ResolvedModel
from stackcert.status import Status

OPS = [f"op{i}" for i in range(40)] + ["mul"]
REF = [answers.Answer(prompt=p, tokens=[1], top=[{1: -0.1}]) for p in answers.DEFAULT_PROMPTS]
TRACE = """(EngineCore pid=1) ERROR Traceback (most recent call last):
(EngineCore pid=1) ERROR   File "/s/vllm/model_executor/layers/layernorm.py", line 9, in forward_static
(EngineCore pid=1) ERROR   File "/s/flag_gems/runtime/backend/_nvidia/hopper/ops/mul.py", line 31, in mul
(EngineCore pid=1) ERROR RuntimeError: Triton Error [CUDA]: an illegal memory access was encountered
"""


class FakeServer:
    """A FAKE server: what the probe client reads."""

    def __init__(self, stack: StackSpec) -> None:
        self.stack, self.served_model, self.base_url = stack, "m", "http://fake"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    starts: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def fake_launch(stack: StackSpec, model: Any, *, run_dir: Path, **kw: Any) -> Iterator[FakeServer]:
        assert stack.operators is not None
        run_dir.mkdir(parents=True, exist_ok=True)
        active = [o for o in OPS if o not in stack.operators.exclude]
        starts.append({"env": dict(stack.env), "active": len(active)})
        if "mul" in active:
            log = run_dir / "server.log"
            blocking = stack.env.get("CUDA_LAUNCH_BLOCKING") == "1"
            log.write_text(TRACE if blocking else "RuntimeError: CUDA error: an illegal memory access\n")
            finding = Finding(step="launch", category="device_error", message="illegal memory access")
            raise EngineStartError("start failed", findings=[finding], log_path=log)
        yield FakeServer(stack)

    monkeypatch.setattr("stackcert.engines.launch_server", fake_launch)
    monkeypatch.setattr(answers, "collect", lambda server, prompts=None, **kw: REF)
    return starts


def test_bisect_step_on_a_vllm_candidate(tmp_path: Path, fakes: list[dict[str, Any]]) -> None:
    cfg = from_preset("gpu")
    pipe = Pipeline(cfg, Ledger.create(tmp_path, PLAN))
    for step in ("env", "install", "model", "reference.serve", "reference.smoke"):
        pipe.step(step, lambda: Outcome(status=Status.PASS), 5)
    finding = Finding(step="launch", category="device_error", message="CUDA error: illegal memory access")
    pipe.step("candidate.serve", lambda: Outcome(status=Status.FAIL, findings=[finding]), 5)
    model = ModelRef(path=tmp_path / "model", served_name="m", tokenizer=tmp_path / "model")
    pipe.ctx.results.model = ResolvedModel(model=model)
    # what the failed candidate start read back from its engine process
    cand_dir = tmp_path / "stacks" / "flaggems"
    cand_dir.mkdir(parents=True, exist_ok=True)
    (cand_dir / "effective_ops.json").write_text(json.dumps({"effective": OPS}))
    pipe.layout.reference_answers.parent.mkdir(exist_ok=True)
    pipe.layout.reference_answers.write_text(json.dumps({"answers": [a.model_dump() for a in REF]}))
    assert analysis.bisect_reason(pipe.ctx) is None  # a device fault names no kernel: bisect
    assert pipe.step("bisect", lambda: analysis.bisect_step(pipe.ctx), 30) is Status.PASS
    data = pipe.ctx.results.bisect
    assert data is not None
    assert data.traceback_operator == "mul" and data.traceback_source == "CUDA_LAUNCH_BLOCKING=1 start"
    assert data.result.culprits == ["mul"] and data.result.probes_used == 3
    assert fakes[0]["env"]["CUDA_LAUNCH_BLOCKING"] == "1" and len(fakes) == 4  # diagnostic + 3 probes
    assert data.engine_starts == 4 and "reference_start_s" not in data.timing  # kept answers
    saved = json.loads((tmp_path / "bisect.json").read_text())  # written once, by the runner
    assert saved["kind"] == "bisect" and saved["result"]["culprits"] == ["mul"]
    report = build_report(pipe.ctx)
    culprit = next(f for f in report.findings if f.category == "operator_culprit")
    assert (culprit.component.value, culprit.layer.value, culprit.operator) == ("flag_gems", "L3", "mul")
    assert culprit.excerpt is not None and any("hopper/ops/mul.py" in x for x in culprit.excerpt.lines)


def test_consistency_only_failure_of_a_vllm_candidate_is_not_bisected(tmp_path: Path) -> None:
    """Measured on the GPU: FlagGems without mul served and passed smoke, consistency said 'retest';
    a bisection by engine starts would have spent ~11 starts on a difference its probes cannot see."""
    pipe = Pipeline(from_preset("gpu"), Ledger.create(tmp_path, PLAN))
    for step in ("reference.serve", "reference.smoke", "candidate.serve", "candidate.smoke"):
        pipe.step(step, lambda: Outcome(status=Status.PASS), 5)
    pipe.step("consistency", lambda: Outcome(status=Status.FAIL, reason="consistency retest"), 5)
    why = analysis.bisect_reason(pipe.ctx)
    assert why is not None and why.startswith("not run: the vLLM candidate serves")
