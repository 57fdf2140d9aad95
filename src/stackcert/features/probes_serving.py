"""Features decided by requests: prefix caching, chunked prefill, long context, structured output."""

from __future__ import annotations

import json
import uuid
from typing import Any

from stackcert.answers import BadAnswer, loads
from stackcert.features.context import ProbeContext, result
from stackcert.features.engine_config import metric_sum, parse_prometheus
from stackcert.features.models import FeatureResult, RequestEvidence
from stackcert.features.wire import completion_text, usage_counts

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank. "
CHARS_PER_TOKEN_LOW = 2.0  # nothing counts tokens: assume short ones, so a prompt never runs over
MIN_LONG_FILL = 0.75  # a long-context prompt must reach this share of max_model_len


def _count_tokens(ctx: ProbeContext, text: str) -> tuple[int | None, RequestEvidence]:
    """Tokens of `text` by /tokenize; without it, by the usage of a 1-token completion (a short text)."""
    reply = ctx.post("/tokenize", {"model": ctx.served_model, "prompt": text}, timeout=10.0)
    reply.evidence.excerpt = reply.evidence.excerpt[:120]
    count = reply.data.get("count") if reply.ok and isinstance(reply.data, dict) else None
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        return count, reply.evidence
    return None, reply.evidence


def sized_prompt(ctx: ProbeContext, tokens: int, head: str = "") -> tuple[str, list[RequestEvidence]]:
    """A prompt of about `tokens` tokens (never more when the server counts them), starting with `head`."""
    sample_reps = 8
    count, ev = _count_tokens(ctx, head + SENTENCE * sample_reps)
    evidence = [ev]
    if count is None:  # no /tokenize: the usage of a short completion counts the sample instead
        probe = ctx.completion(head + SENTENCE * sample_reps, 1)
        evidence.append(probe.evidence)
        count = usage_counts(probe).get("prompt_tokens")
    if count is None:
        reps = max(1, int(tokens * CHARS_PER_TOKEN_LOW / len(SENTENCE)))
        return head + SENTENCE * reps, evidence
    per = max(1.0, count / sample_reps)  # the head counted in: a little short, never over
    reps = max(1, int(tokens / per))
    text = head + SENTENCE * reps
    got, ev = _count_tokens(ctx, text)
    evidence.append(ev)
    while got is not None and got > tokens and reps > 1:  # trim to fit (rarely more than once)
        reps = max(1, reps - max(1, int((got - tokens) / per) + 1))
        text = head + SENTENCE * reps
        got, ev = _count_tokens(ctx, text)
        evidence.append(ev)
    return text, evidence


def _prefix_counters(ctx: ProbeContext) -> tuple[dict[str, float] | None, RequestEvidence]:
    reply = ctx.get_text("/metrics")
    reply.evidence.excerpt = ""  # the whole exposition is no evidence; the counters are kept instead
    if not reply.ok:
        return None, reply.evidence
    metrics = parse_prometheus(reply.text)
    out = {
        name: value
        for name in ("vllm:prefix_cache_hits", "vllm:prefix_cache_queries")
        if (value := metric_sum(metrics, name)) is not None
    }
    return (out or None), reply.evidence


def prefix_caching(ctx: ProbeContext) -> FeatureResult:
    """The same long prompt twice: the second must hit the prefix cache (/metrics counters or usage)."""
    setting = ctx.view.get("enable_prefix_caching")
    enabled = ctx.view.flag("enable_prefix_caching")
    lines = ctx.view.lines("enable_prefix_caching")
    max_len = ctx.max_model_len_value()
    limit = max_len // 2 if max_len else ctx.options.prefix_tokens
    tokens = min(max(ctx.options.prefix_tokens, 2 * (ctx.block_size or 16)), max(16, limit))
    prompt, sizing = sized_prompt(ctx, tokens, head=f"[{uuid.uuid4().hex}] ")
    before, m0 = _prefix_counters(ctx)
    first = ctx.completion(prompt, 1)
    second = ctx.completion(prompt, 1)
    after, m1 = _prefix_counters(ctx)
    requests = [*sizing, m0, first.evidence, second.evidence, m1]
    metrics: dict[str, float] = {}
    hits: float | None = None
    if before and after and "vllm:prefix_cache_hits" in before and "vllm:prefix_cache_hits" in after:
        hits = after["vllm:prefix_cache_hits"] - before["vllm:prefix_cache_hits"]
        metrics["prefix_cache_hits_delta"] = hits
        if "vllm:prefix_cache_queries" in before and "vllm:prefix_cache_queries" in after:
            metrics["prefix_cache_queries_delta"] = (
                after["vllm:prefix_cache_queries"] - before["vllm:prefix_cache_queries"]
            )
    cached = usage_counts(second).get("cached_tokens")
    if cached is not None:
        metrics["usage_cached_tokens"] = float(cached)
    prompt_tokens = usage_counts(second).get("prompt_tokens")
    if prompt_tokens is not None:
        metrics["prompt_tokens"] = float(prompt_tokens)
    decided = setting.describe() if setting else None
    answered = [completion_text(first, 1) is not None, completion_text(second, 1) is not None]
    if not all(answered):
        bad = first if not answered[0] else second
        return result(
            "prefix_caching",
            "unsupported" if bad.evidence.status is not None else "error",
            f"the repeated long prompt was not answered: {bad.evidence.error}",
            decided_by=decided,
            requests=requests,
            log_lines=lines,
            metrics=metrics,
        )
    measured = [x for x in (hits, cached) if x is not None]
    if measured and max(measured) > 0:
        return result(
            "prefix_caching",
            "supported",
            f"the repeated prompt hit the cache: {int(max(measured))} cached prompt tokens",
            decided_by=decided or "measured",
            mode="on",
            requests=requests,
            log_lines=lines,
            metrics=metrics,
        )
    if enabled is False:
        return result(
            "prefix_caching",
            "disabled",
            "prefix caching is off in this stack" + (" (and no cache hits measured)" if measured else ""),
            decided_by=decided,
            mode="off",
            requests=requests,
            log_lines=lines,
            metrics=metrics,
        )
    if measured:
        return result(
            "prefix_caching",
            "unsupported",
            "the repeated prompt got no cache hits"
            + (" although the engine config enables it" if enabled else ""),
            decided_by=decided or "measured",
            mode="on" if enabled else None,
            requests=requests,
            log_lines=lines,
            metrics=metrics,
        )
    return result(
        "prefix_caching",
        "supported" if enabled else "error",
        "no prefix-cache counters (/metrics) nor usage.prompt_tokens_details.cached_tokens to measure; "
        + ("decided from the engine config only" if enabled else "nothing to decide from"),
        basis="config" if enabled else None,
        decided_by=decided,
        mode="on" if enabled else None,
        requests=requests,
        log_lines=lines,
        metrics=metrics,
    )


def chunked_prefill(ctx: ProbeContext) -> FeatureResult:
    """From the engine config; with a prompt longer than the chunk (max_num_batched_tokens) when one fits."""
    v = ctx.view
    setting = v.get("enable_chunked_prefill")
    enabled = v.flag("enable_chunked_prefill")
    chunk = v.number("max_num_batched_tokens")
    max_len = ctx.max_model_len_value()
    lines = v.lines("enable_chunked_prefill", "max_num_batched_tokens")
    decided = setting.describe() if setting else None
    metrics: dict[str, float] = {}
    if chunk is not None:
        metrics["max_num_batched_tokens"] = float(chunk)
    if enabled is None:
        return result("chunked_prefill", "error", "no engine config (log or argv) says whether it is on")
    if not enabled:
        return result(
            "chunked_prefill",
            "disabled",
            "chunked prefill is off in this stack",
            decided_by=decided,
            mode="off",
            log_lines=lines,
            metrics=metrics,
        )
    if chunk is None or max_len is None or chunk + 32 >= max_len:
        why = (
            "the chunk size (max_num_batched_tokens) is not in the log or argv"
            if chunk is None
            else f"max_num_batched_tokens={chunk} leaves no room below max_model_len={max_len}"
        )
        return result(
            "chunked_prefill",
            "supported",
            f"on in the engine config; no prompt longer than one chunk was sent: {why}",
            decided_by=decided,
            mode="on",
            log_lines=lines,
            metrics=metrics,
        )
    prompt, sizing = sized_prompt(ctx, min(chunk + 64, max_len - 8))
    reply = ctx.completion(prompt, 1)
    text = completion_text(reply, 1)
    counts = usage_counts(reply)
    if "prompt_tokens" in counts:
        metrics["prompt_tokens"] = float(counts["prompt_tokens"])
    ok = reply.ok and text is not None and counts.get("prompt_tokens", chunk + 1) > chunk
    return result(
        "chunked_prefill",
        "supported" if ok else "unsupported",
        f"a prompt longer than one chunk ({chunk} tokens) was answered"
        if ok
        else f"a prompt longer than one chunk ({chunk} tokens) failed: {reply.evidence.error or 'too short'}",
        decided_by=decided,
        mode="on",
        requests=[*sizing, reply.evidence],
        log_lines=lines,
        metrics=metrics,
    )


def long_context(ctx: ProbeContext) -> FeatureResult:
    """A prompt filling most of max_model_len, answered with HTTP 200 and the prompt tokens counted."""
    max_len = ctx.max_model_len_value()
    src = ctx.max_model_len
    if max_len is None or src is None:
        return result(
            "long_context", "error", "max_model_len unknown (not in /v1/models, /tokenize, log or argv)"
        )
    target = max(16, int(max_len * ctx.options.long_context_fill) - 8)
    prompt, sizing = sized_prompt(ctx, target)
    reply = ctx.completion(prompt, 1)
    text = completion_text(reply, 1)
    counts = usage_counts(reply)
    got = counts.get("prompt_tokens")
    metrics = {"max_model_len": float(max_len), "target_prompt_tokens": float(target)}
    if got is not None:
        metrics["prompt_tokens"] = float(got)
    mpe = ctx.checkpoint.max_position_embeddings
    mode = f"max_model_len {max_len}" + (f" of the model's {mpe}" if mpe else "")
    enough = got is not None and got >= int(MIN_LONG_FILL * max_len)
    ok = reply.ok and text is not None and enough
    if ok and got is not None:
        evidence = f"a {got}-token prompt ({got / max_len:.0%} of max_model_len {max_len}) was answered"
    elif reply.ok and got is None:
        evidence = "answered, but usage.prompt_tokens is missing: the prompt length is not confirmed"
    elif reply.ok:
        evidence = f"answered, but the prompt was only {got} tokens: not near max_model_len {max_len}"
    else:
        evidence = f"a prompt of ~{target} tokens failed: {reply.evidence.error}"
    return result(
        "long_context",
        "supported" if ok else ("error" if reply.evidence.status is None else "unsupported"),
        evidence,
        decided_by=src.describe(),
        mode=mode,
        requests=[*sizing, reply.evidence],
        metrics=metrics,
    )


# A value the model would never write unprompted: only a grammar that is really applied produces it.
MARKER = "stackcert-7f3a"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "marker": {"type": "string", "enum": [MARKER]},
        "answer": {"type": "string", "enum": ["yes", "no"]},
        "digit": {"type": "integer", "enum": [1, 2, 3]},
    },
    "required": ["marker", "answer", "digit"],
    "additionalProperties": False,
}


def validate(value: Any, schema: dict[str, Any] = SCHEMA) -> list[str]:
    """Violations of `schema` (the subset used here: object, properties, required, enum, types)."""
    if not isinstance(value, dict):
        return [f"not an object: {type(value).__name__}"]
    errors = [f"missing '{key}'" for key in schema["required"] if key not in value]
    props: dict[str, Any] = schema["properties"]
    if schema.get("additionalProperties") is False:
        errors += [f"unexpected '{key}'" for key in value if key not in props]
    types = {"string": str, "integer": int, "object": dict}
    for key, sub in props.items():
        if key not in value:
            continue
        item = value[key]
        want = types.get(sub.get("type", ""), object)
        if not isinstance(item, want) or (want is int and isinstance(item, bool)):
            errors.append(f"'{key}' is not {sub.get('type')}")
        elif "enum" in sub and item not in sub["enum"]:
            errors.append(f"'{key}'={item!r} not in {sub['enum']}")
    return errors


def structured_output(ctx: ProbeContext) -> FeatureResult:
    """A JSON-schema response_format request whose answer must parse and validate against the schema."""
    fmt = {"type": "json_schema", "json_schema": {"name": "probe", "schema": SCHEMA, "strict": True}}
    reply = ctx.completion(
        "Is Paris in France? Answer as a JSON object: ",
        ctx.options.structured_max_tokens,
        response_format=fmt,
    )
    text = completion_text(reply, ctx.options.structured_max_tokens)
    decided = "request: response_format json_schema"
    if text is None:
        refused = reply.evidence.status is not None and reply.evidence.status != 200
        return result(
            "structured_output",
            "unsupported" if refused or reply.evidence.status == 200 else "error",
            f"no answer to a JSON-schema request: {reply.evidence.error}",
            decided_by=decided,
            requests=[reply.evidence],
        )
    try:
        parsed = loads(text, "the structured answer")
    except BadAnswer as exc:
        return result(
            "structured_output",
            "unsupported",
            f"the answer is not JSON: {exc}",
            decided_by=decided,
            requests=[reply.evidence],
        )
    problems = validate(parsed)
    if problems:
        return result(
            "structured_output",
            "unsupported",
            "the answer does not validate against the schema: " + "; ".join(problems[:5]),
            decided_by=decided,
            requests=[reply.evidence],
        )
    return result(
        "structured_output",
        "supported",
        f"the answer parses and validates against the schema: {json.dumps(parsed, ensure_ascii=False)[:120]}",
        decided_by=decided,
        mode="json_schema",
        requests=[reply.evidence],
    )
