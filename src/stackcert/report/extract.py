"""The report's derived views of the typed results: the conclusion, the serve command, the side-by-side
evaluation table and the plot series (every part may be missing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from stackcert.bench.records import BenchResult, RunMetrics
from stackcert.consistency.logprobs import LogprobStats
from stackcert.consistency.options import ConsistencyResult
from stackcert.report.schema import EvalRow, Series
from stackcert.runmodel.results import RunResults
from stackcert.runmodel.steps import StepRecord
from stackcert.runmodel.verdict import Verdict, VerdictResult

_MAX_LATENCY_POINTS = 2000


def conclusion(v: VerdictResult, reference: str, candidate: str) -> str:
    """The one-paragraph conclusion of the verdict."""
    if v.verdict is Verdict.PASS:
        return f"PASS: both stacks pass every gate; the candidate '{candidate}' is recommended."
    if v.verdict is Verdict.PARTIAL:
        why = "; ".join(v.reasons)
        tail = " Retest advised." if v.retest else ""
        head = f"PARTIAL: the reference '{reference}' passes"
        return f"{head}; the candidate '{candidate}' does not ({why}).{tail}"
    return f"FAIL: {'; '.join(v.reasons)}. No stack is recommended."


def vllm_command(model_path: str, served: str, engine_args: dict[str, Any], dtype: str) -> list[str]:
    """The vLLM serve command for a stack that recorded none (it never started)."""
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_path,
        "--served-model-name",
        served,
        "--dtype",
        dtype,
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
    ]
    for key, value in engine_args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        else:
            argv += [flag, str(value)]
    return argv


def with_port(argv: list[str], port: int) -> list[str]:
    """The recorded command with a fixed, documented port instead of the random one the run used."""
    out = list(argv)
    if "--port" in out:
        i = out.index("--port")
        if i + 1 < len(out):
            out[i + 1] = str(port)
    return out


def _fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _point_metrics(bench: BenchResult | None) -> list[tuple[int | None, RunMetrics]]:
    """(concurrency, metrics of the last kept run) per load point."""
    out: list[tuple[int | None, RunMetrics]] = []
    for point in bench.points if bench is not None else []:
        kept = point.kept()
        if kept:
            out.append((point.concurrency, kept[-1]))
    return out


def _headline(bench: BenchResult | None) -> RunMetrics | None:
    """The metrics of the highest-concurrency point."""
    points = _point_metrics(bench)
    if not points:
        return None
    return max(points, key=lambda p: p[0] or 0)[1]


def evaluation_rows(results: RunResults, timeline: list[StepRecord], perf_gate: float) -> list[EvalRow]:
    """The side-by-side table: smoke, serving, consistency, accuracy and performance."""
    rows: list[EvalRow] = []
    smoke = [results.reference.smoke, results.candidate.smoke]
    if any(smoke):
        rows.append(
            EvalRow(
                group="smoke",
                metric="status",
                reference=_fmt(smoke[0].status.value if smoke[0] else None),
                candidate=_fmt(smoke[1].status.value if smoke[1] else None),
            )
        )
        rows.append(
            EvalRow(
                group="smoke",
                metric="sample output",
                reference=_fmt(smoke[0].output_sample if smoke[0] else None),
                candidate=_fmt(smoke[1].output_sample if smoke[1] else None),
            )
        )
    by_id = {r.id: r for r in timeline}
    starts = [by_id.get(f"{r}.serve") for r in ("reference", "candidate")]
    if any(r is not None and r.status.done for r in starts):
        rows.append(
            EvalRow(
                group="serving",
                metric="engine start (s)",
                reference=_fmt(starts[0].duration_s if starts[0] else None, 1),
                candidate=_fmt(starts[1].duration_s if starts[1] else None, 1),
                note=" / ".join(r.status.value for r in starts if r is not None),
            )
        )
    rows += _consistency_rows(results.consistency)
    heads = [_headline(results.reference.bench), _headline(results.candidate.bench)]
    if any(heads):
        a, b = heads
        for label, get in (
            ("output tok/s", lambda m: m.output_throughput),
            ("requests/s", lambda m: m.request_throughput),
            ("TTFT median (ms)", lambda m: m.ttft_ms.median),
            ("TPOT median (ms)", lambda m: m.tpot_ms.median),
            ("E2EL median (ms)", lambda m: m.e2el_ms.median),
        ):
            rows.append(
                EvalRow(
                    group="performance",
                    metric=label,
                    reference=_fmt(get(a) if a else None),
                    candidate=_fmt(get(b) if b else None),
                )
            )
    compare = results.compare
    if compare is not None and compare.perf_ratio is not None:
        rows.append(
            EvalRow(
                group="performance",
                metric="throughput ratio (candidate/reference)",
                reference="1.00",
                candidate=_fmt(compare.perf_ratio),
                note=f"gate ≥ {perf_gate}",
            )
        )
    return rows


def _consistency_rows(cons: ConsistencyResult | None) -> list[EvalRow]:
    if cons is None:
        return []
    rows = [EvalRow(group="consistency", metric="status", reference="–", candidate=cons.status)]
    summary = cons.tokens.summary if cons.tokens is not None else None
    if summary is not None:
        rows.append(
            EvalRow(
                group="consistency",
                metric="greedy outputs identical",
                reference="–",
                candidate=f"{summary.identical}/{summary.prompts}",
                note=f"{summary.diverged_ok} diverged as near ties, {summary.failed} "
                f"failed ({summary.cross_scored} judged by cross-scoring)",
            )
        )
    for check in cons.logprobs.checks if cons.logprobs is not None else []:
        rows.append(
            EvalRow(
                group="consistency",
                metric=f"{check.metric} vs limit",
                reference=f"noise {_fmt(check.noise, 4)}",
                candidate=_fmt(check.value, 4),
                note=f"{check.decision}: upper bound {_fmt(check.ci_high, 4)} vs limit "
                f"{_fmt(check.limit, 4)} (tolerance {_fmt(check.tolerance, 4)}); "
                f"detects ≥ {_fmt(check.min_detectable, 4)}",
            )
        )
    stats = _logprob_stats(cons)
    if stats is not None:
        rows.append(
            EvalRow(
                group="consistency",
                metric="mean / max KL (nats)",
                reference="–",
                candidate=f"{_fmt(stats.mean_kl, 4)} / {_fmt(stats.max_kl, 4)}",
            )
        )
        rows.append(
            EvalRow(
                group="consistency",
                metric="top-1 agreement",
                reference="–",
                candidate=_fmt(stats.top1_agreement, 4),
            )
        )
    for task in cons.tasks.tasks if cons.tasks is not None else []:
        rows.append(
            EvalRow(
                group="accuracy",
                metric=f"{task.task} accuracy",
                reference=_fmt(task.reference_accuracy, 3),
                candidate=_fmt(task.candidate_accuracy, 3),
                note=f"{task.status} (n={task.items}): {task.rules.reason}",
            )
        )
    return rows


def _logprob_stats(cons: ConsistencyResult | None) -> LogprobStats | None:
    """The reference-vs-candidate log-prob statistics of the consistency result."""
    if cons is None or cons.logprobs is None:
        return None
    return cons.logprobs.comparison


def _latencies(bench: BenchResult | None) -> list[float]:
    path = bench.records_path if bench is not None else None
    if not path or not Path(path).exists():
        return []
    out: list[float] = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("success") and not rec.get("warmup"):
                out.append(float(rec.get("latency", 0.0)) * 1000.0)
            if len(out) >= _MAX_LATENCY_POINTS:
                break
    return out


def series(results: RunResults, reference: str, candidate: str) -> Series:
    """The plot data: latencies and throughput per stack, mean KL per scored text."""
    out = Series()
    for role, name in (("reference", reference), ("candidate", candidate)):
        bench = results.stack(role).bench
        lat = _latencies(bench)
        if lat:
            out.latency[name] = lat
        pts = [[float(c), float(m.output_throughput)] for c, m in _point_metrics(bench) if c]
        if pts:
            out.throughput[name] = pts
    stats = _logprob_stats(results.consistency)
    if stats is not None:  # the statistics keep the mean KL per scored text
        out.kl = [[float(t.index), float(t.mean_kl)] for t in stats.per_text]
        out.kl_axis = "text"
    return out
