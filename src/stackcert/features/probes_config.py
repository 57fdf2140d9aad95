"""Features decided from configuration (engine settings, config.json), each backed by one small request:
graph mode vs eager, expert parallelism, MTP / speculative decoding, multimodal."""

from __future__ import annotations

import base64
import struct
import zlib

from stackcert.features.context import ProbeContext, result
from stackcert.features.models import FeatureId, FeatureResult, RequestEvidence
from stackcert.features.wire import completion_text

SERVE_PROMPT = "The capital of France is"


def serves(ctx: ProbeContext) -> tuple[bool, RequestEvidence]:
    """One short greedy completion: does the server answer it with text, in its current configuration?"""
    reply = ctx.completion(SERVE_PROMPT, 4)
    text = completion_text(reply, 4)
    if text is not None and not text.strip():
        reply.evidence.error = "empty text"
    return reply.ok and bool(text and text.strip()), reply.evidence


def _without_trait(
    ctx: ProbeContext, feature: FeatureId, present: bool, absent: str, *, decided_by: str, mode: str
) -> FeatureResult | None:
    """Error if config.json is unreadable, not-applicable if it lacks the trait; None: go on and probe."""
    cp = ctx.checkpoint
    if not cp.readable:
        return result(feature, "error", f"cannot decide without config.json: {cp.problem}")
    if not present:
        return result(feature, "not-applicable", absent, decided_by=decided_by, mode=mode)
    return None


def graph_mode(ctx: ProbeContext) -> FeatureResult:
    """Compiled graph (torch.compile / CUDA graphs) or eager, from the engine config; one request in it."""
    v = ctx.view
    eager = v.flag("enforce_eager")
    cmode, backend, cgraph = v.get("compilation_mode"), v.get("compilation_backend"), v.get("cudagraph_mode")
    lines = v.lines("enforce_eager", "compilation_mode", "cudagraph_mode", "enforce_eager_warning")
    if eager is None and cmode is None:
        return result(
            "graph_mode",
            "error",
            "no engine config to decide from (no server log with the engine-config line, no argv)",
        )
    ok, ev = serves(ctx)
    if eager or (cmode is not None and cmode.value == "NONE"):
        decider = v.get("enforce_eager") if eager else cmode
        assert decider is not None
        return result(
            "graph_mode",
            "disabled" if ok else "unsupported",
            "eager mode: graph compilation is off in this stack"
            + ("" if ok else f"; and no answer: {ev.error}"),
            decided_by=decider.describe(),
            mode="eager",
            requests=[ev],
            log_lines=lines,
        )
    parts = [f"compilation mode {cmode.value}" if cmode else "compiled"]
    if backend is not None and backend.value:
        parts.append(f"backend {backend.value}")
    if cgraph is not None:
        parts.append(f"cudagraph_mode {cgraph.value}")
    mode = "compiled (" + ", ".join(parts) + ")"
    decider = cmode or v.get("enforce_eager")
    return result(
        "graph_mode",
        "supported" if ok else "unsupported",
        f"serves in graph mode: {mode}" if ok else f"configured {mode} but the request failed: {ev.error}",
        decided_by=decider.describe() if decider else None,
        mode=mode,
        requests=[ev],
        log_lines=lines,
    )


def expert_parallel(ctx: ProbeContext) -> FeatureResult:
    """Not applicable unless config.json names routed experts; then expert parallelism on or off."""
    cp = ctx.checkpoint
    dense = _without_trait(
        ctx,
        "expert_parallel",
        cp.is_moe,
        "dense model: config.json names no routed experts",
        decided_by=f"config.json {cp.expert_key}={cp.experts}"
        if cp.expert_key
        else "config.json: no num_experts / num_local_experts / n_routed_experts",
        mode="dense",
    )
    if dense is not None:
        return dense
    ep = ctx.view.flag("enable_expert_parallel")
    setting = ctx.view.get("enable_expert_parallel")
    ok, ev = serves(ctx)
    mode = f"MoE, {cp.experts} experts"
    if not ep:
        return result(
            "expert_parallel",
            "disabled" if ok else "unsupported",
            f"{mode}; expert parallelism is not enabled in this stack (--enable-expert-parallel)",
            decided_by=setting.describe()
            if setting
            else f"config.json {cp.expert_key}={cp.experts}; no flag",
            mode=mode,
            requests=[ev],
        )
    return result(
        "expert_parallel",
        "supported" if ok else "unsupported",
        f"{mode}; expert parallel " + ("serves" if ok else f"request failed: {ev.error}"),
        decided_by=setting.describe() if setting else None,
        mode=mode,
        requests=[ev],
    )


def speculative_decoding(ctx: ProbeContext) -> FeatureResult:
    """Speculative decoding on (speculative_config), off, or impossible: the checkpoint has no MTP heads."""
    cp = ctx.checkpoint
    spec = ctx.view.get("speculative_config")
    lines = ctx.view.lines("speculative_config")
    if spec is not None and spec.value not in ("None", "", "null", "{}"):
        ok, ev = serves(ctx)
        return result(
            "speculative_decoding",
            "supported" if ok else "unsupported",
            "speculative decoding configured and serving"
            if ok
            else f"configured, request failed: {ev.error}",
            decided_by=spec.describe(),
            mode="speculative",
            requests=[ev],
            log_lines=lines,
        )
    if not cp.readable:
        return result(
            "speculative_decoding", "error", f"no speculative_config; cannot read config.json: {cp.problem}"
        )
    if not cp.has_mtp:
        why = (
            f"config.json {cp.mtp_key}={cp.mtp_layers}"
            if cp.mtp_key
            else "config.json: no num_nextn_predict_layers (or other MTP key)"
        )
        return result(
            "speculative_decoding",
            "checkpoint-missing",
            "the checkpoint has no MTP / draft heads; speculative decoding needs a separate draft model",
            decided_by=why,
            log_lines=lines,
        )
    return result(
        "speculative_decoding",
        "disabled",
        f"the checkpoint has {cp.mtp_layers} MTP layer(s) but this stack sets no speculative_config",
        decided_by=f"config.json {cp.mtp_key}={cp.mtp_layers}; "
        + (spec.describe() if spec else "speculative_config not set"),
        log_lines=lines,
    )


def multimodal(ctx: ProbeContext) -> FeatureResult:
    """Not applicable without a vision part in config.json; else one text+image chat request."""
    cp = ctx.checkpoint
    text_only = _without_trait(
        ctx,
        "multimodal",
        cp.has_vision,
        "text-only model: config.json has no vision part",
        decided_by="config.json: no vision_config / image_token_id",
        mode="text",
    )
    if text_only is not None:
        return text_only
    body: dict[str, object] = {
        "model": ctx.served_model,
        "max_tokens": 16,
        "temperature": 0,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What colour is this image? One word."},
                    {"type": "image_url", "image_url": {"url": red_png_data_url()}},
                ],
            }
        ],
    }
    reply = ctx.post("/v1/chat/completions", body)
    text = completion_text(reply, 16)
    ok = reply.ok and bool(text and text.strip())
    return result(
        "multimodal",
        "supported" if ok else "unsupported",
        "answered a text+image request"
        if ok
        else f"text+image request failed: {reply.evidence.error or 'empty'}",
        decided_by=f"config.json {cp.vision_key}",
        mode="text+image",
        requests=[reply.evidence],
    )


def red_png_data_url(size: int = 32) -> str:
    """A plain red PNG (size x size) as a data: URL, built without an imaging library."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        """One PNG chunk: length, type, data, CRC."""
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
