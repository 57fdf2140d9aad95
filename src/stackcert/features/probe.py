"""`probe_features`: the feature matrix of an already running server, within one time budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from stackcert.answers import clean
from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, Server
from stackcert.features.capacity import capacity
from stackcert.features.checkpoint import read_checkpoint
from stackcert.features.context import Budget, ProbeContext, result
from stackcert.features.engine_config import Setting, info_labels, read_view, server_info
from stackcert.features.models import FEATURE_IDS, FeatureId, FeatureMatrix, FeatureOptions, FeatureResult
from stackcert.features.probes_config import expert_parallel, graph_mode, multimodal, speculative_decoding
from stackcert.features.probes_serving import chunked_prefill, long_context, prefix_caching, structured_output
from stackcert.features.wire import Wire
from stackcert.progress import NullProgress, Progress

PROBES: dict[FeatureId, Callable[[ProbeContext], FeatureResult]] = {
    "graph_mode": graph_mode,
    "prefix_caching": prefix_caching,
    "chunked_prefill": chunked_prefill,
    "expert_parallel": expert_parallel,
    "speculative_decoding": speculative_decoding,
    "multimodal": multimodal,
    "long_context": long_context,
    "structured_output": structured_output,
    "capacity": capacity,
}
TASK = "features"


def probe_features(
    server: Server,
    stack: StackSpec,
    model: ModelRef,
    *,
    options: FeatureOptions | None = None,
    progress: Progress | None = None,
) -> FeatureMatrix:
    """Probe every feature of `options.features` on the running `server`; never raises for its answers."""
    options = options or FeatureOptions()
    progress = progress or NullProgress()
    t0 = time.monotonic()
    budget = Budget(options.budget_s)
    info = server_info(server)
    matrix = FeatureMatrix(
        stack=stack.name,
        engine=info.engine if info else stack.engine,
        served_model=server.served_model,
        base_url=server.base_url,
        budget_s=options.budget_s,
    )
    wanted = [f for f in FEATURE_IDS if f in set(options.features)]
    progress.on_start(TASK, total=len(wanted))
    with Wire(
        server, timeout=options.request_timeout_s, max_connections=max(16, options.capacity_max)
    ) as wire:
        ctx = ProbeContext(
            server=server,
            stack=stack,
            model=model,
            options=options,
            wire=wire,
            view=read_view(server),
            checkpoint=read_checkpoint(model.path),
            budget=budget,
            served_model=server.served_model,
        )
        discover(ctx)
        matrix.model_path = str(ctx.checkpoint.path.parent) if ctx.checkpoint.path else None
        for feature in wanted:
            matrix.features.append(run_probe(ctx, feature))
            last = matrix.features[-1]
            progress.on_advance(TASK)
            qualifier = f" ({last.basis})" if last.basis in ("disabled", "error") else ""
            progress.on_message(TASK, f"{feature}: {last.outcome}{qualifier}")
    matrix.duration_s = round(time.monotonic() - t0, 3)
    progress.on_finish(TASK, "pass")
    return matrix


def run_probe(ctx: ProbeContext, feature: FeatureId) -> FeatureResult:
    """One probe within the budget; a probe that fails unexpectedly is an `error` result, not a crash."""
    t0 = time.monotonic()
    if ctx.budget.spent:
        res = result(
            feature, "error", f"the time budget of {ctx.budget.seconds:.0f}s was spent before this probe"
        )
    else:
        try:
            res = PROBES[feature](ctx)
        except Exception as exc:  # a hostile answer must never end the matrix
            res = result(feature, "error", f"probe failed: {type(exc).__name__}: {clean(str(exc), 300)}")
    res.duration_s = round(time.monotonic() - t0, 3)
    return res


def discover(ctx: ProbeContext) -> None:
    """max_model_len and the checkpoint folder from GET /v1/models; the KV block size from /metrics."""
    reply = ctx.wire.request("GET", "/v1/models", timeout=ctx.budget.timeout(10.0))
    cards = reply.data.get("data") if reply.ok and isinstance(reply.data, dict) else None
    card = (
        next(
            (c for c in cards if isinstance(c, dict) and c.get("id") == ctx.served_model),
            None,
        )
        if isinstance(cards, list)
        else None
    )
    if card is not None:
        length = card.get("max_model_len")
        if isinstance(length, int) and not isinstance(length, bool) and length > 0:
            ctx.max_model_len = Setting("max_model_len", str(length), "api GET /v1/models")
        root = card.get("root")
        if (
            not ctx.checkpoint.readable
            and isinstance(root, str)
            and root.startswith("/")
            and len(root) < 4096
        ):
            found = read_checkpoint(Path(root))
            if found.readable:
                ctx.checkpoint = found
    if ctx.max_model_len is None:
        ctx.max_model_len = ctx.view.get("max_model_len") or ctx.view.get("max_seq_len")
    metrics = ctx.get_text("/metrics")
    if metrics.ok:
        labels = info_labels(metrics.text, "vllm:cache_config_info")
        try:
            ctx.block_size = int(labels.get("block_size", "")) or None
        except ValueError:
            ctx.block_size = None
