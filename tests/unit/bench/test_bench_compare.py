"""The A/B throughput gate."""

from __future__ import annotations

import pytest

from stackcert.bench.compare import compare_bench
from stackcert.bench.metrics import compute_metrics
from stackcert.bench.records import BenchResult, PointResult, RequestRecord, RunResult


def _run(out_tokens: int, duration: float, rep: int, discarded: bool = False) -> RunResult:
    rec = RequestRecord(
        index=0,
        success=True,
        chunk_times=[0.1, 0.2],
        ttft=0.1,
        latency=0.2,
        output_tokens=out_tokens,
        prompt_len=10,
    )
    return RunResult(repeat=rep, discarded=discarded, metrics=compute_metrics([rec], duration))


def _result(*runs: RunResult, point: str = "c=1") -> BenchResult:
    p = PointResult(profile="smoke", point=point, concurrency=1, num_prompts=1, runs=list(runs))
    return BenchResult(status="pass", base_url="x", model="m", points=[p])


def test_ratio_gate_uses_min_of_output_and_total_and_skips_discarded() -> None:
    ref = _result(_run(100, 1.0, 0, discarded=True), _run(90, 1.0, 1), _run(110, 1.0, 2))
    cand = _result(_run(1, 1.0, 0, discarded=True), _run(80, 1.0, 1), _run(80, 1.0, 2))
    cmp = compare_bench(ref, cand, threshold=0.8)
    [row] = cmp.points
    assert row.output_ratio == pytest.approx(0.8)
    assert row.total_ratio == pytest.approx(90 / 110)
    assert row.ratio == pytest.approx(0.8)
    assert row.reference_output.min == 90 and row.reference_output.max == 110 and row.reference_output.n == 2
    assert row.reference_output.std == pytest.approx(10.0)
    assert cmp.passed
    assert not compare_bench(ref, cand, threshold=0.85).passed


def test_missing_points_fail_the_gate() -> None:
    ref = _result(_run(100, 1.0, 0))
    cand = _result(_run(100, 1.0, 0), point="c=4")
    cmp = compare_bench(ref, cand)
    assert not cmp.passed and cmp.missing == ["smoke c=1", "smoke c=4"]
