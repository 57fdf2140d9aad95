"""The capacity baseline: max_model_len x max_num_seqs of the running server against the target (the
seed's 128k x 16), the reasons it is scaled down, then concurrency raised until errors or the budget."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from stackcert.features.context import Decision, ProbeContext, result
from stackcert.features.engine_config import info_labels
from stackcert.features.models import (
    CapacityBaseline,
    ConcurrencyStep,
    FeatureResult,
    RequestEvidence,
)
from stackcert.features.wire import completion_text


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "None") else None
    except ValueError:
        return None


def measure_limits(ctx: ProbeContext, base: CapacityBaseline) -> list[RequestEvidence]:
    """Fill in what the server has: max_model_len, max_num_seqs, KV cache (log, argv, /metrics info)."""
    v = ctx.view
    base.max_model_len = ctx.max_model_len_value()
    base.max_num_seqs = v.number("max_num_seqs")
    kv = v.number("kv_cache_tokens")
    conc = v.get("max_concurrency")
    requests: list[RequestEvidence] = []
    if kv is None or conc is None:
        reply = ctx.get_text("/metrics")
        reply.evidence.excerpt = ""
        requests.append(reply.evidence)
        labels = info_labels(reply.text, "vllm:cache_config_info") if reply.ok else {}
        kv_m = _number(labels.get("kv_cache_size_tokens"))
        kv = kv if kv is not None else (int(kv_m) if kv_m is not None else None)
        if conc is None and _number(labels.get("kv_cache_max_concurrency")) is not None:
            base.max_concurrency_at_max_len = round(float(labels["kv_cache_max_concurrency"]), 2)
    if conc is not None:
        base.max_concurrency_at_max_len = _number(conc.value)
    base.kv_cache_tokens = kv
    if base.max_concurrency_at_max_len is None and kv and base.max_model_len:
        base.max_concurrency_at_max_len = round(kv / base.max_model_len, 2)
    return requests


def scale_down_reasons(ctx: ProbeContext, base: CapacityBaseline) -> list[str]:
    """Why the server is below the target, one reason per dimension (empty when it meets it)."""
    reasons: list[str] = []
    tl, ts = base.target_max_model_len, base.target_max_num_seqs
    ml, src = base.max_model_len, ctx.max_model_len
    mpe = ctx.checkpoint.max_position_embeddings
    if ml is None:
        reasons.append("max_model_len unknown")
    elif ml < tl:
        setter = ctx.view.argv.get("max_model_len") or src  # the flag that asked for it, when there is one
        cause = f"set by {setter.describe()}" if setter else "set by the engine"
        if mpe is not None and mpe < tl:
            cause += f"; the model itself allows at most {mpe} (config.json max_position_embeddings)"
        reasons.append(f"max_model_len {ml} < target {tl}: {cause}")
    if base.max_num_seqs is not None and base.max_num_seqs < ts:
        seqs = ctx.view.get("max_num_seqs")
        reasons.append(
            f"max_num_seqs {base.max_num_seqs} < target {ts}"
            + (f": set by {seqs.describe()}" if seqs else "")
        )
    if base.kv_cache_tokens is not None and base.kv_cache_tokens < tl * ts:
        reasons.append(
            f"the KV cache holds {base.kv_cache_tokens} tokens; the target {tl} x {ts} needs {tl * ts} "
            "(memory for the KV cache: VLLM_CPU_KVCACHE_SPACE / gpu_memory_utilization)"
        )
    return reasons


def ramp(ctx: ProbeContext, base: CapacityBaseline) -> list[RequestEvidence]:
    """Raise concurrency (doubling) until a request fails, the ramp's time is spent or the limit is met.

    The first rung always runs (within the matrix's budget): a capacity nobody was served at is none."""
    opts = ctx.options
    deadline = time.monotonic() + min(opts.capacity_budget_s, ctx.budget.left())
    limit = min(opts.capacity_max, base.max_num_seqs or opts.capacity_max)
    samples: list[RequestEvidence] = []
    level = min(opts.capacity_start, limit)
    base.ramp_stopped_by = "limit"
    while level <= limit:
        left = deadline - time.monotonic()
        if base.ramp and left < 1.0:
            base.ramp_stopped_by = "budget"
            break
        if not base.ramp:
            left = max(left, ctx.budget.timeout(opts.request_timeout_s))
        t0 = time.monotonic()
        timeout = min(opts.request_timeout_s, left)

        def one(i: int, timeout: float = timeout) -> RequestEvidence:
            """Request `i` of this rung; its evidence, an empty text counted as an error."""
            body = {
                "model": ctx.served_model,
                "prompt": f"Request {i}: count from one to ten:",
                "max_tokens": opts.capacity_max_tokens,
                "temperature": 0,
            }
            reply = ctx.wire.post("/v1/completions", body, timeout=timeout)
            text = completion_text(reply, opts.capacity_max_tokens)
            if reply.ok and not (text or "").strip():
                reply.evidence.error = "empty text"
            return reply.evidence

        with ThreadPoolExecutor(max_workers=level) as pool:
            evidence = list(pool.map(one, range(level)))
        bad = [e for e in evidence if not e.ok]
        step = ConcurrencyStep(
            concurrency=level,
            ok=len(evidence) - len(bad),
            errors=len(bad),
            duration_s=round(time.monotonic() - t0, 3),
            first_error=bad[0].error if bad else None,
        )
        base.ramp.append(step)
        samples.append(bad[0] if bad else evidence[0])
        if bad:
            timed_out = all(e.status is None for e in bad) and time.monotonic() >= deadline - 0.5
            base.ramp_stopped_by = "budget" if timed_out else "errors"
            break
        base.max_ok_concurrency = level
        if level == limit:
            break
        level = min(level * 2, limit)
    return samples


def capacity(ctx: ProbeContext) -> FeatureResult:
    """The capacity baseline of the running server."""
    base = CapacityBaseline(
        target_max_model_len=ctx.options.target_max_model_len,
        target_max_num_seqs=ctx.options.target_max_num_seqs,
    )
    requests = measure_limits(ctx, base)
    base.reasons = scale_down_reasons(ctx, base)
    base.scaled_down = bool(base.reasons)
    requests += ramp(ctx, base)
    seqs = str(base.max_num_seqs) if base.max_num_seqs is not None else "engine default (not logged)"
    shape = f"max_model_len {base.max_model_len} x max_num_seqs {seqs}"
    target = f"target {base.target_max_model_len} x {base.target_max_num_seqs}"
    outcome: Decision
    first_failed = bool(base.ramp) and base.ramp[0].errors > 0
    if base.max_model_len is None and not base.ramp:
        outcome, evidence = "error", "nothing measured: max_model_len unknown and no ramp ran"
    elif first_failed:
        no_answer = base.ramp[0].ok == 0 and all(r.status is None for r in requests[-1:])
        outcome = "error" if no_answer else "unsupported"
        evidence = f"{shape}; even concurrency {base.ramp[0].concurrency} failed: {base.ramp[0].first_error}"
    else:
        outcome = "supported"
        ramp_text = (
            f"served {base.max_ok_concurrency} concurrent requests (ramp stopped by {base.ramp_stopped_by})"
            if base.ramp
            else "no concurrency ramp"
        )
        scaled = f"scaled down from the {target}" if base.scaled_down else f"meets the {target}"
        evidence = f"{shape}, {scaled}; {ramp_text}"
    lines = ctx.view.lines("kv_cache_tokens", "max_concurrency", "max_model_len", "max_num_seqs")
    res = result(
        "capacity",
        outcome,
        evidence,
        decided_by=ctx.max_model_len.describe() if ctx.max_model_len else None,
        mode=shape,
        requests=requests,
        log_lines=lines,
        metrics={
            k: float(v)
            for k, v in {
                "max_model_len": base.max_model_len,
                "max_num_seqs": base.max_num_seqs,
                "kv_cache_tokens": base.kv_cache_tokens,
                "max_ok_concurrency": base.max_ok_concurrency,
            }.items()
            if v is not None
        },
    )
    res.capacity = base
    return res
