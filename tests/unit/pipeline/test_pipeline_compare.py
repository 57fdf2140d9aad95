"""Compare and bisect decisions over hand-made step results (the real diff and bench-compare code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackcert.bench.records import BenchResult
from stackcert.config import OperatorSelection
from stackcert.consistency.options import ConsistencyResult
from stackcert.features.models import WeightGate, WeightGates
from stackcert.pipeline import analysis
from stackcert.pipeline.context import Outcome
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.reporting import build_report, verdict_of
from stackcert.pipeline.runner import PLAN, Pipeline
from stackcert.runmodel.config import from_preset
from stackcert.runmodel.results import StepResult
from stackcert.smoke.models import SmokeResult
from stackcert.status import Status

STATS = {"mean": 10.0, "median": 10.0, "count": 4}


def _metrics(tput: float) -> dict[str, Any]:
    m: dict[str, Any] = {
        k: STATS
        for k in (
            "ttft_ms",
            "tpot_ms",
            "itl_ms",
            "itl_per_token_ms",
            "e2el_ms",
            "ttft_intended_ms",
            "e2el_intended_ms",
            "send_delay_ms",
        )
    }
    return m | {
        "duration_s": 1.0,
        "completed": 4,
        "failed": 0,
        "total_input": 256,
        "total_output": 128,
        "request_throughput": tput / 32,
        "output_throughput": tput,
        "total_token_throughput": tput * 3,
    }


def _bench(tput: float) -> dict[str, Any]:
    return {
        "status": "pass",
        "base_url": "http://x",
        "model": "m",
        "points": [
            {
                "profile": "smoke",
                "point": "c=1",
                "concurrency": 1,
                "num_prompts": 4,
                "runs": [{"repeat": 0, "metrics": _metrics(tput)}],
            }
        ],
    }


def _smoke(name: str, status: str) -> dict[str, Any]:
    return {"status": status, "stack": name, "engine": "vllm", "output_sample": " 12+7 = 19"}


@pytest.fixture
def pipe(tmp_path: Path) -> Pipeline:
    return Pipeline(from_preset("demo"), Ledger.create(tmp_path, PLAN))


def _done(pipe: Pipeline, step: str, status: Status, result: StepResult | None = None) -> None:
    pipe.step(step, lambda: Outcome(status=status, result=result), 5)


def _fill(pipe: Pipeline, cand_tput: float, cand_smoke: str = "pass", consistency: str = "pass") -> None:
    for step in ("env", "install", "model", "reference.serve", "candidate.serve"):
        _done(pipe, step, Status.PASS)
    _done(pipe, "reference.smoke", Status.PASS, SmokeResult.model_validate(_smoke("eager", "pass")))
    _done(
        pipe,
        "candidate.smoke",
        Status(cand_smoke),
        SmokeResult.model_validate(_smoke("compiled", cand_smoke)),
    )
    _done(pipe, "reference.bench", Status.PASS, BenchResult.model_validate(_bench(100.0)))
    _done(pipe, "candidate.bench", Status.PASS, BenchResult.model_validate(_bench(cand_tput)))
    cons = ConsistencyResult.model_validate(
        {"status": consistency, "reference": "eager", "candidate": "compiled"}
    )
    _done(pipe, "consistency", Status.PASS if consistency == "pass" else Status.FAIL, cons)
    real = WeightGate(stage="real", stack="compiled", load_format="auto", status=Status.PASS)
    _done(pipe, "weights", Status.PASS, WeightGates(stack="compiled", stage_b=real))


def test_fast_consistent_candidate_passes(pipe: Pipeline) -> None:
    _fill(pipe, 95.0)
    assert pipe.step("compare", lambda: analysis.compare_step(pipe.ctx), 30) is Status.PASS
    compare = pipe.ctx.results.compare
    assert compare is not None and compare.perf_ok is True and compare.perf_ratio == pytest.approx(0.95)
    assert compare.diff is not None and compare.diff.conclusion == "BOTH_PASS"
    v = verdict_of(pipe.ctx)
    assert (v.verdict.value, v.recommended, v.exit_code) == ("PASS", "full", 0)


def test_slow_candidate_is_partial_and_the_report_says_why(pipe: Pipeline) -> None:
    _fill(pipe, 50.0)
    assert pipe.step("compare", lambda: analysis.compare_step(pipe.ctx), 30) is Status.FAIL
    v = verdict_of(pipe.ctx)
    assert (v.verdict.value, v.exit_code) == ("PARTIAL", 3) and "0.50" in v.reasons[0]
    report = build_report(pipe.ctx)
    assert report.steps.perf_test.status == "success" and report.status == "PARTIAL"
    assert any(
        r.metric == "throughput ratio (candidate/reference)" and r.candidate == "0.50"
        for r in report.evaluation
    )
    assert report.series.throughput == {"eager": [[1.0, 100.0]], "compiled": [[1.0, 50.0]]}


def test_bisect_only_when_an_operator_library_is_involved(pipe: Pipeline) -> None:
    _fill(pipe, 95.0, cand_smoke="fail")
    pipe.step("compare", lambda: analysis.compare_step(pipe.ctx), 30)
    assert analysis.bisect_reason(pipe.ctx) == "not possible: the candidate selects no operator library"
    cand = pipe.config.stacks["compiled"]
    pipe.config.stacks["compiled"] = cand.model_copy(
        update={"operators": OperatorSelection(library="fault_ops")}
    )
    assert analysis.bisect_reason(pipe.ctx) is None


def test_no_bisect_when_candidate_passes(pipe: Pipeline) -> None:
    _fill(pipe, 95.0)
    assert analysis.bisect_reason(pipe.ctx) == "not needed: the candidate does not fail"
