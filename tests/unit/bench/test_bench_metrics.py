"""Metric arithmetic on hand-made chunk timelines (a scripted clock)."""

from __future__ import annotations

import pytest

from stackcert.bench.metrics import compute_metrics, stats
from stackcert.bench.records import RequestRecord


def timeline(
    start: float,
    gaps: list[float],
    *,
    tokens: list[int] | None = None,
    out: int | None = None,
    intended: float | None = None,
) -> RequestRecord:
    times, t = [], start
    for g in gaps:
        t += g
        times.append(t)
    rec = RequestRecord(
        index=0,
        success=True,
        start=start,
        intended_start=start if intended is None else intended,
        chunk_times=times,
        chunk_tokens=tokens or [],
        prompt_len=10,
    )
    rec.ttft = times[0] - start
    rec.latency = times[-1] - start
    rec.output_tokens = out if out is not None else (sum(tokens) if tokens else len(times))
    return rec


def test_latency_minus_ttft_is_sum_of_itls() -> None:
    rec = timeline(100.0, [0.25, 0.01, 0.02, 0.03, 0.04])
    assert rec.ttft == pytest.approx(0.25)
    assert sum(rec.itl) == pytest.approx(rec.latency - rec.ttft)
    m = compute_metrics([rec], duration_s=1.0)
    assert m.ttft_ms.mean == pytest.approx(250.0)
    # TPOT = (latency - ttft) / (output_tokens - 1) = 0.10 / 4
    assert m.tpot_ms.mean == pytest.approx(25.0)
    assert m.itl_ms.count == 4
    assert m.itl_ms.mean == pytest.approx(25.0)
    assert m.e2el_ms.mean == pytest.approx(350.0)


def test_multi_token_chunks_per_chunk_and_per_token_itl() -> None:
    # first chunk 1 token, then chunks of 2, 3 and 1 tokens: 7 tokens in 4 chunks
    rec = timeline(0.0, [0.1, 0.02, 0.03, 0.01], tokens=[1, 2, 3, 1])
    assert rec.itl == pytest.approx([0.02, 0.03, 0.01])
    assert rec.itl_per_token == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.01, 0.01])
    m = compute_metrics([rec], duration_s=2.0)
    assert m.total_output == 7
    assert m.tpot_ms.mean == pytest.approx(1000 * 0.06 / 6)
    assert m.itl_ms.mean == pytest.approx(20.0)
    assert m.itl_per_token_ms.mean == pytest.approx(10.0)
    assert m.output_throughput == pytest.approx(3.5)
    assert m.total_token_throughput == pytest.approx(8.5)


def test_throughput_failures_goodput_and_one_token_outputs() -> None:
    fast = timeline(0.0, [0.1, 0.01, 0.01])
    slow = timeline(0.0, [0.9, 0.2, 0.2])
    single = timeline(0.0, [0.05])  # one token: TPOT excluded from stats, 0 for goodput
    bad = RequestRecord(index=3, success=False, error="boom", http_status=500)
    m = compute_metrics([fast, slow, single, bad], duration_s=2.0, goodput_slo_ms={"ttft": 500, "tpot": 50})
    assert (m.completed, m.failed) == (3, 1)
    assert m.errors == {"HTTP 500: boom": 1}
    assert m.tpot_ms.count == 2
    assert m.request_throughput == pytest.approx(1.5)
    assert m.request_goodput == pytest.approx(1.0)  # fast and single meet both SLOs


def test_coordinated_omission_latency_from_intended_time() -> None:
    rec = timeline(10.0, [0.1, 0.1], intended=9.5)  # sent 0.5 s late
    m = compute_metrics([rec], duration_s=1.0)
    assert m.ttft_ms.mean == pytest.approx(100.0)
    assert m.ttft_intended_ms.mean == pytest.approx(600.0)
    assert m.e2el_intended_ms.mean == pytest.approx(700.0)
    assert m.send_delay_ms.mean == pytest.approx(500.0)


def test_warmup_records_are_left_out() -> None:
    a = timeline(0.0, [0.1, 0.1])
    w = timeline(0.0, [5.0, 0.1])
    w.warmup = True
    m = compute_metrics([a, w], duration_s=1.0)
    assert m.completed == 1
    assert m.ttft_ms.max == pytest.approx(100.0)


def test_stats_match_numpy_percentiles_and_empty_is_zero() -> None:
    s = stats([0.001 * i for i in range(1, 101)], [50, 99])
    assert s.percentiles["p50"] == pytest.approx(50.5)
    assert s.percentiles["p99"] == pytest.approx(99.01)
    assert s.median == pytest.approx(50.5)
    e = stats([], [50])
    assert (e.mean, e.count) == (0.0, 0)
