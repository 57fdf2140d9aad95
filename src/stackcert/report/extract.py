"""Pull the numbers the report shows out of the step payloads (tolerant of missing parts)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from stackcert.pipeline.steps import RunContext
from stackcert.pipeline.verdict import Verdict, VerdictResult
from stackcert.report.schema import EvalRow

_MAX_LATENCY_POINTS = 2000


def conclusion(v: VerdictResult, reference: str, candidate: str) -> str:
    if v.verdict is Verdict.PASS:
        return f"PASS: both stacks pass every gate; the candidate '{candidate}' is recommended."
    if v.verdict is Verdict.PARTIAL:
        why = "; ".join(v.reasons)
        tail = " Retest advised." if v.retest else ""
        head = f"PARTIAL: the reference '{reference}' passes"
        return f"{head}; the candidate '{candidate}' does not ({why}).{tail}"
    return f"FAIL: {'; '.join(v.reasons)}. No stack is recommended."


def vllm_command(model_path: str, served: str, engine_args: dict[str, Any], dtype: str) -> list[str]:
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


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _point_metrics(bench: dict[str, Any] | None) -> list[tuple[int | None, dict[str, Any]]]:
    """(concurrency, mean metrics of the kept runs) per load point."""
    out: list[tuple[int | None, dict[str, Any]]] = []
    for point in (bench or {}).get("points", []) or []:
        runs = [r.get("metrics", {}) for r in point.get("runs", []) if not r.get("discarded")]
        if runs:
            out.append((point.get("concurrency"), runs[-1]))
    return out


def _headline(bench: dict[str, Any] | None) -> dict[str, Any] | None:
    """The metrics of the highest-concurrency point."""
    points = _point_metrics(bench)
    if not points:
        return None
    return max(points, key=lambda p: p[0] or 0)[1]


def evaluation_rows(ctx: RunContext, reference: str, candidate: str) -> list[EvalRow]:
    rows: list[EvalRow] = []
    smoke = [ctx.result(f"{r}.smoke") or {} for r in ("reference", "candidate")]
    if any(smoke):
        rows.append(
            EvalRow(
                group="smoke",
                metric="status",
                reference=_fmt(smoke[0].get("status")),
                candidate=_fmt(smoke[1].get("status")),
            )
        )
        rows.append(
            EvalRow(
                group="smoke",
                metric="sample output",
                reference=_fmt(smoke[0].get("output_sample")),
                candidate=_fmt(smoke[1].get("output_sample")),
            )
        )
    starts = [ctx.ledger.get(f"{r}.serve") for r in ("reference", "candidate")]
    if any(r.status.done for r in starts):
        rows.append(
            EvalRow(
                group="serving",
                metric="engine start (s)",
                reference=_fmt(starts[0].duration_s, 1),
                candidate=_fmt(starts[1].duration_s, 1),
                note=" / ".join(r.status.value for r in starts),
            )
        )
    rows += _consistency_rows(ctx.result("consistency"))
    heads = [_headline(ctx.result(f"{r}.bench")) for r in ("reference", "candidate")]
    if any(heads):
        a, b = heads[0] or {}, heads[1] or {}
        for key, label in (("output_throughput", "output tok/s"), ("request_throughput", "requests/s")):
            rows.append(
                EvalRow(
                    group="performance", metric=label, reference=_fmt(a.get(key)), candidate=_fmt(b.get(key))
                )
            )
        for key, label in (
            ("ttft_ms", "TTFT median (ms)"),
            ("tpot_ms", "TPOT median (ms)"),
            ("e2el_ms", "E2EL median (ms)"),
        ):
            rows.append(
                EvalRow(
                    group="performance",
                    metric=label,
                    reference=_fmt((a.get(key) or {}).get("median")),
                    candidate=_fmt((b.get(key) or {}).get("median")),
                )
            )
    compare = ctx.result("compare") or {}
    if compare.get("perf_ratio") is not None:
        rows.append(
            EvalRow(
                group="performance",
                metric="throughput ratio (candidate/reference)",
                reference="1.00",
                candidate=_fmt(compare["perf_ratio"]),
                note=f"gate ≥ {ctx.config.gates.perf_ratio}",
            )
        )
    return rows


def _consistency_rows(cons: dict[str, Any] | None) -> list[EvalRow]:
    if not cons:
        return []
    rows = [EvalRow(group="consistency", metric="status", reference="–", candidate=_fmt(cons.get("status")))]
    tokens = (cons.get("tokens") or {}).get("summary") or {}
    if tokens:
        rows.append(
            EvalRow(
                group="consistency",
                metric="greedy outputs identical",
                reference="–",
                candidate=f"{tokens.get('identical')}/{tokens.get('prompts')}",
                note=f"{tokens.get('diverged_ok', 0)} diverged as near ties, {tokens.get('failed', 0)} "
                f"failed ({tokens.get('cross_scored', 0)} judged by cross-scoring)",
            )
        )
    lp = _logprob_stats(cons)
    for check in (cons.get("logprobs") or {}).get("checks") or []:
        if isinstance(check, dict) and "decision" in check:
            rows.append(
                EvalRow(
                    group="consistency",
                    metric=f"{check.get('metric')} vs limit",
                    reference=f"noise {_fmt(check.get('noise'), 4)}",
                    candidate=_fmt(check.get("value"), 4),
                    note=f"{check.get('decision')}: upper bound {_fmt(check.get('ci_high'), 4)} vs limit "
                    f"{_fmt(check.get('limit'), 4)} (tolerance {_fmt(check.get('tolerance'), 4)}); "
                    f"detects ≥ {_fmt(check.get('min_detectable'), 4)}",
                )
            )
    if lp:
        rows.append(
            EvalRow(
                group="consistency",
                metric="mean / max KL (nats)",
                reference="–",
                candidate=f"{_fmt(lp.get('mean_kl'), 4)} / {_fmt(lp.get('max_kl'), 4)}",
            )
        )
        rows.append(
            EvalRow(
                group="consistency",
                metric="top-1 agreement",
                reference="–",
                candidate=_fmt(lp.get("top1_agreement"), 4),
            )
        )
    for task in (cons.get("tasks") or {}).get("tasks") or []:
        if isinstance(task, dict) and "reference_accuracy" in task:
            rows.append(
                EvalRow(
                    group="accuracy",
                    metric=f"{task.get('task')} accuracy",
                    reference=_fmt(task.get("reference_accuracy"), 3),
                    candidate=_fmt(task.get("candidate_accuracy"), 3),
                    note=f"{task.get('status')} (n={task.get('items')}): "
                    f"{(task.get('rules') or {}).get('reason', '')}",
                )
            )
    return rows


def _logprob_stats(cons: dict[str, Any]) -> dict[str, Any]:
    """The reference-vs-candidate log-prob statistics of the consistency result."""
    phase = cons.get("logprobs") or {}
    stats = phase.get("comparison") if isinstance(phase, dict) else None
    return stats if isinstance(stats, dict) else {}


def _latencies(bench: dict[str, Any] | None) -> list[float]:
    path = (bench or {}).get("records_path")
    if not path or not Path(path).exists():
        return []
    out: list[float] = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("success") and not rec.get("warmup"):
                out.append(float(rec.get("latency", 0.0)) * 1000.0)
            if len(out) >= _MAX_LATENCY_POINTS:
                break
    return out


def series(ctx: RunContext) -> dict[str, Any]:
    latency: dict[str, list[float]] = {}
    throughput: dict[str, list[list[float]]] = {}
    for role in ("reference", "candidate"):
        name = ctx.stack(role).name
        bench = ctx.result(f"{role}.bench")
        lat = _latencies(bench)
        if lat:
            latency[name] = lat
        pts = [[float(c), float(m.get("output_throughput", 0.0))] for c, m in _point_metrics(bench) if c]
        if pts:
            throughput[name] = pts
    kl: list[list[float]] = []
    cons = ctx.result("consistency") or {}
    lp = _logprob_stats(cons)
    per_token = lp.get("per_token_kl")
    if isinstance(per_token, list):
        kl = [[float(i), float(v)] for i, v in enumerate(per_token)]
    else:
        kl = [
            [float(t.get("index", i)), float(t.get("mean_kl", 0.0))]
            for i, t in enumerate(lp.get("per_text") or [])
        ]
    axis = "token" if isinstance(per_token, list) else "text"
    return {"latency": latency, "throughput": throughput, "kl": kl, "kl_axis": axis}
