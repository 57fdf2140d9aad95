"""Metric arithmetic, identical to vLLM's `calculate_metrics` (vllm/benchmarks/serve.py).

TTFT, TPOT = (latency - ttft) / (output_tokens - 1) for requests with more than one output token,
ITL = every gap between content chunks, E2EL = latency; throughputs divide by the run duration;
goodput counts the requests that meet every SLO (TPOT counted as 0 for one-token outputs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from stackcert.bench.records import RequestRecord, RunMetrics, Stats

DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def pct_key(p: float) -> str:
    """The key of a percentile in the stats, e.g. 99.0 -> 'p99', 99.9 -> 'p99.9'."""
    return f"p{p:g}"


def stats(values_s: Sequence[float], percentiles: Sequence[float], *, scale: float = 1000.0) -> Stats:
    """mean/median/std/percentiles like vLLM (an empty list counts as [0]); `scale` 1000 gives ms."""
    arr = np.asarray(values_s if len(values_s) else [0.0], dtype=float) * scale
    return Stats(
        mean=float(np.mean(arr)),
        median=float(np.median(arr)),
        std=float(np.std(arr)),
        min=float(np.min(arr)),
        max=float(np.max(arr)),
        count=len(values_s),
        percentiles={pct_key(p): float(np.percentile(arr, p)) for p in percentiles},
    )


def error_key(rec: RequestRecord) -> str:
    """The line a failed request's error is counted under: its last line, after any non-200 HTTP status."""
    msg = (rec.error or "unknown error").strip().splitlines()
    head = msg[-1] if msg else "unknown error"
    prefix = f"HTTP {rec.http_status}: " if rec.http_status and rec.http_status != 200 else ""
    return (prefix + head)[:200]


def _peak_output_rate(ok: list[RequestRecord]) -> tuple[float, int]:
    """vLLM's max output tokens/s and max concurrent requests over one-second buckets."""
    if not ok:
        return 0.0, 0
    t0 = min(r.start for r in ok)
    t1 = max(r.start + r.latency for r in ok)
    n = int(np.ceil(t1 - t0)) + 1
    tokens = np.zeros(n)
    conc = np.zeros(n)
    for r in ok:
        for t in r.chunk_times:
            b = int(t - t0)
            if 0 <= b < n:
                tokens[b] += 1
        for s in range(int(r.start - t0), int(r.start + r.latency - t0) + 1):
            conc[s] += 1
    return float(tokens.max()), int(conc.max())


def compute_metrics(
    records: Sequence[RequestRecord],
    duration_s: float,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    goodput_slo_ms: dict[str, float] | None = None,
) -> RunMetrics:
    """Aggregate the measured (non-warm-up) records of one run."""
    recs = [r for r in records if not r.warmup]
    ok = [r for r in recs if r.success]
    failed = [r for r in recs if not r.success]
    ttfts, tpots, all_tpots, itls, itl_tok, e2els = [], [], [], [], [], []
    ttft_int, e2el_int, delays = [], [], []
    total_in = total_out = 0
    for r in ok:
        out_len = r.output_tokens
        total_in += r.usage_prompt_tokens if r.usage_prompt_tokens is not None else r.prompt_len
        total_out += out_len
        tpot = 0.0
        if out_len > 1:
            tpot = (r.latency - r.ttft) / (out_len - 1)
            tpots.append(tpot)
        all_tpots.append(tpot)
        itls += r.itl
        itl_tok += r.itl_per_token
        ttfts.append(r.ttft)
        e2els.append(r.latency)
        ttft_int.append(r.ttft + r.delay)
        e2el_int.append(r.latency + r.delay)
        delays.append(r.delay)
    good = None
    if goodput_slo_ms:
        slo = {k: v / 1000.0 for k, v in goodput_slo_ms.items()}
        cols = {"ttft": ttfts, "tpot": all_tpots, "e2el": e2els}
        good_n = sum(
            1 for i in range(len(ok)) if all(cols[k][i] <= limit for k, limit in slo.items() if k in cols)
        )
        good = good_n / duration_s if duration_s > 0 else 0.0
    dur = duration_s if duration_s > 0 else float("inf")
    peak_rate, peak_conc = _peak_output_rate(ok)
    return RunMetrics(
        duration_s=duration_s,
        completed=len(ok),
        failed=len(failed),
        total_input=total_in,
        total_output=total_out,
        request_throughput=len(ok) / dur,
        request_goodput=good,
        output_throughput=total_out / dur,
        total_token_throughput=(total_in + total_out) / dur,
        max_output_tokens_per_s=peak_rate,
        max_concurrent_requests=peak_conc,
        ttft_ms=stats(ttfts, percentiles),
        tpot_ms=stats(tpots, percentiles),
        itl_ms=stats(itls, percentiles),
        itl_per_token_ms=stats(itl_tok, percentiles),
        e2el_ms=stats(e2els, percentiles),
        ttft_intended_ms=stats(ttft_int, percentiles),
        e2el_intended_ms=stats(e2el_int, percentiles),
        send_delay_ms=stats(delays, percentiles),
        errors=dict(Counter(error_key(r) for r in failed)),
        token_mismatches=sum(1 for r in ok if r.token_mismatch),
        token_sources=dict(Counter(r.token_source for r in ok)),
        malformed_lines=sum(r.malformed_lines for r in recs),
    )
