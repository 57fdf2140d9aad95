"""probe_features against a FAKE server: each outcome, its evidence, hostile answers, the time budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.unit.features.fake_features_server import BLOCK, FakeFeaturesServer, count_tokens, engine_log

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef
from stackcert.features import (
    FEATURE_IDS,
    FeatureMatrix,
    FeatureOptions,
    features_document,
    load_features,
    probe_features,
    write_features,
)

FAST = FeatureOptions(budget_s=30, request_timeout_s=5, capacity_budget_s=3, capacity_max=8)


def _model(tmp: Path, config: dict[str, object] | None = None) -> ModelRef:
    folder = tmp / "ckpt"
    folder.mkdir(exist_ok=True)
    cfg = config if config is not None else {"model_type": "gemma3_text", "max_position_embeddings": 32768}
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return ModelRef(path=folder, served_name="fake-model", tokenizer=folder)


def _probe(fake: FakeFeaturesServer, model: ModelRef, options: FeatureOptions = FAST) -> FeatureMatrix:
    stack = StackSpec(name="fake", engine="vllm")
    return probe_features(fake, stack, model, options=options)


def test_compiled_server_gets_every_outcome_with_evidence(tmp_path: Path) -> None:
    argv = ["python", "-m", "vllm", "--max-model-len", "1024", "--max-num-seqs", "8"]
    with FakeFeaturesServer(argv=argv, log_text=engine_log(chunk=256), tmp=tmp_path) as fake:
        m = _probe(fake, _model(tmp_path))
    outcomes = m.decisions()
    assert list(outcomes) == list(FEATURE_IDS)
    assert outcomes == {
        "graph_mode": "supported",
        "prefix_caching": "supported",
        "chunked_prefill": "supported",
        "expert_parallel": "not-applicable",
        "speculative_decoding": "checkpoint-missing",
        "multimodal": "not-applicable",
        "long_context": "supported",
        "structured_output": "supported",
        "capacity": "supported",
    }
    graph = m.result("graph_mode")
    assert graph is not None and graph.mode is not None and "DYNAMO_TRACE_ONCE" in graph.mode
    assert graph.decided_by is not None and graph.decided_by.startswith(
        "compilation_mode=DYNAMO_TRACE_ONCE (log line 2)"
    )
    assert any("enforce_eager=False" in line for line in graph.log_lines)
    assert graph.requests and graph.requests[0].status == 200
    prefix = m.result("prefix_caching")
    assert prefix is not None and prefix.metrics["prefix_cache_hits_delta"] >= BLOCK
    completions = [r for r in prefix.requests if r.path == "/v1/completions"]
    assert len(completions) == 2 and completions[0].body == completions[1].body
    chunk = m.result("chunked_prefill")
    assert chunk is not None and chunk.metrics["prompt_tokens"] > 256  # a prompt longer than one chunk
    assert chunk.decided_by == "enable_chunked_prefill=True (log line 2)"
    long = m.result("long_context")
    assert long is not None and 0.75 * 1024 <= long.metrics["prompt_tokens"] <= 1024
    assert long.decided_by == "max_model_len=1024 (api GET /v1/models)"
    spec = m.result("speculative_decoding")
    assert spec is not None and "num_nextn_predict_layers" in (spec.decided_by or "")
    cap = m.result("capacity")
    assert cap is not None and cap.capacity is not None
    assert cap.capacity.max_num_seqs == 8 and cap.capacity.kv_cache_tokens == 50000
    assert cap.capacity.scaled_down and any(
        "max_model_len 1024 < target 131072: set by max_model_len=1024 (argv --max-model-len)" in r
        for r in cap.capacity.reasons
    )
    assert any("max_num_seqs 8 < target 16" in r for r in cap.capacity.reasons)
    assert [s.concurrency for s in cap.capacity.ramp] == [1, 2, 4, 8]
    assert cap.capacity.max_ok_concurrency == 8 and cap.capacity.ramp_stopped_by == "limit"
    assert all(r.duration_s >= 0 for r in m.features) and m.duration_s < 30


def test_eager_and_disabled_features_say_which_field_decided(tmp_path: Path) -> None:
    log = engine_log(enforce_eager=True, prefix=False, chunked=False)
    with FakeFeaturesServer(log_text=log, tmp=tmp_path) as fake:
        fake.behaviour.prefix_caching = False
        m = _probe(fake, _model(tmp_path))
    graph = m.result("graph_mode")
    assert (
        graph is not None
        and (graph.outcome, graph.basis) == ("unsupported", "disabled")
        and graph.mode == "eager"
    )
    assert graph.decided_by == "enforce_eager=True (log line 2)"
    prefix = m.result("prefix_caching")
    assert prefix is not None and (prefix.outcome, prefix.basis) == ("unsupported", "disabled")
    assert prefix.metrics["prefix_cache_hits_delta"] == 0
    chunk = m.result("chunked_prefill")
    assert (
        chunk is not None
        and (chunk.outcome, chunk.basis) == ("unsupported", "disabled")
        and not chunk.requests
    )


def test_prefix_cache_enabled_but_never_hit_is_unsupported(tmp_path: Path) -> None:
    with FakeFeaturesServer(log_text=engine_log(), tmp=tmp_path) as fake:
        fake.behaviour.prefix_caching = False
        m = _probe(fake, _model(tmp_path), FAST.model_copy(update={"features": ["prefix_caching"]}))
    [res] = m.features
    assert (res.outcome, res.basis) == ("unsupported", "request") and "no cache hits" in res.evidence


def test_prefix_cache_from_usage_when_metrics_absent(tmp_path: Path) -> None:
    with FakeFeaturesServer() as fake:
        fake.behaviour.metrics = False
        fake.behaviour.cached_tokens_in_usage = True
        m = _probe(fake, _model(tmp_path), FAST.model_copy(update={"features": ["prefix_caching"]}))
    [res] = m.features
    assert (res.outcome, res.basis) == ("supported", "request") and res.metrics[
        "usage_cached_tokens"
    ] >= BLOCK
    assert "prefix_cache_hits_delta" not in res.metrics


def test_nothing_to_decide_from_is_error_not_a_guess(tmp_path: Path) -> None:
    with FakeFeaturesServer() as fake:  # no log, no argv, no metrics, no cached_tokens
        fake.behaviour.metrics = False
        m = _probe(fake, ModelRef(path=Path(""), served_name="fake-model", tokenizer=Path("")))
    outcomes = m.decisions()
    assert outcomes["graph_mode"] == "error"
    assert outcomes["prefix_caching"] == "error"
    assert outcomes["chunked_prefill"] == "error"
    assert outcomes["expert_parallel"] == "error" and outcomes["multimodal"] == "error"
    assert outcomes["long_context"] == "supported"  # max_model_len from /v1/models


def test_checkpoint_found_through_the_servers_root(tmp_path: Path) -> None:
    model = _model(tmp_path, {"model_type": "x", "num_local_experts": 8})
    with FakeFeaturesServer() as fake:
        fake.behaviour.root = str(model.path)
        m = _probe(
            fake,
            ModelRef(path=Path(""), served_name="fake-model", tokenizer=Path("")),
            FAST.model_copy(update={"features": ["expert_parallel"]}),
        )
    [res] = m.features
    assert (res.outcome, res.basis) == ("unsupported", "disabled") and res.mode == "MoE, 8 experts"
    assert m.model_path == str(model.path)


def test_moe_mtp_and_vision_checkpoints(tmp_path: Path) -> None:
    config = {
        "model_type": "deepseek_v3",
        "n_routed_experts": 256,
        "num_nextn_predict_layers": 1,
        "vision_config": {"hidden_size": 1024},
    }
    argv = ["vllm", "--enable-expert-parallel"]
    only = ["expert_parallel", "speculative_decoding", "multimodal"]
    with FakeFeaturesServer(argv=argv) as fake:
        m = _probe(fake, _model(tmp_path, config), FAST.model_copy(update={"features": only}))
        chat = [r for r in fake.behaviour.requests if "messages" in r]
    assert m.decisions() == {
        "expert_parallel": "supported",
        "speculative_decoding": "disabled",
        "multimodal": "supported",
    }
    ep = m.result("expert_parallel")
    assert ep is not None and ep.decided_by == "enable_expert_parallel=True (argv --enable-expert-parallel)"
    spec = m.result("speculative_decoding")
    assert spec is not None and "num_nextn_predict_layers=1" in (spec.decided_by or "")
    [image_request] = chat
    parts = image_request["messages"][0]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_vision_request_refused_is_unsupported_and_spec_config_is_supported(tmp_path: Path) -> None:
    log = engine_log(spec="SpeculativeConfig(method='mtp', num_spec_tokens=1)")
    with FakeFeaturesServer(log_text=log, tmp=tmp_path) as fake:
        fake.behaviour.chat_ok = False
        config = {"model_type": "qwen2_vl", "vision_config": {}, "image_token_id": 151655}
        only = ["multimodal", "speculative_decoding"]
        m = _probe(fake, _model(tmp_path, config), FAST.model_copy(update={"features": only}))
    assert m.decisions() == {"speculative_decoding": "supported", "multimodal": "unsupported"}
    mm = m.result("multimodal")
    assert mm is not None and mm.requests[0].status == 400 and "image input not supported" in mm.evidence


@pytest.mark.parametrize(
    ("mode", "words"),
    [("ignore", "not JSON"), ("invalid", "does not validate"), ("refuse", "HTTP 400")],
)
def test_structured_output_that_does_not_hold(tmp_path: Path, mode: str, words: str) -> None:
    with FakeFeaturesServer() as fake:
        fake.behaviour.structured = mode
        m = _probe(fake, _model(tmp_path), FAST.model_copy(update={"features": ["structured_output"]}))
    [res] = m.features
    assert res.outcome == "unsupported" and words in res.evidence
    assert res.requests[0].body is not None and "response_format" in res.requests[0].body


@pytest.mark.parametrize("hostile", ["html", "error200", "wrong_types", "empty", "huge"])
def test_hostile_answers_end_in_outcomes_not_exceptions(tmp_path: Path, hostile: str) -> None:
    with FakeFeaturesServer(log_text=engine_log(chunk=256), tmp=tmp_path) as fake:
        fake.behaviour.hostile = hostile
        m = _probe(fake, _model(tmp_path), FAST.model_copy(update={"capacity_budget_s": 1}))
    outcomes = m.decisions()
    assert list(outcomes) == list(FEATURE_IDS)
    for feature in ("graph_mode", "prefix_caching", "long_context", "structured_output", "capacity"):
        assert outcomes[feature] in ("unsupported", "error"), (feature, outcomes[feature])
    errors = [ev.error for r in m.features for ev in r.requests if ev.path == "/v1/completions"]
    assert errors and (all(errors) if hostile != "empty" else "empty text" in errors)
    for res in m.features:
        for ev in res.requests:
            assert len(ev.excerpt) <= 300
    json.dumps(features_document(m))  # the evidence stays serialisable


def test_a_hanging_server_is_bounded_by_the_budget(tmp_path: Path) -> None:
    options = FeatureOptions(budget_s=4, request_timeout_s=2, capacity_budget_s=1)
    with FakeFeaturesServer(log_text=engine_log(), tmp=tmp_path) as fake:
        fake.behaviour.hostile = "hang"
        t0 = time.monotonic()
        m = _probe(fake, _model(tmp_path), options)
        took = time.monotonic() - t0
    assert took < 4 + 2 + 2  # the budget, one request limit, slack
    outcomes = m.decisions()
    assert outcomes["graph_mode"] == "unsupported"
    assert "no complete answer within 2s" in (m.features[0].requests[0].error or "")
    spent = [r for r in m.features if "time budget of 4s was spent" in r.evidence]
    assert spent and all((r.outcome, r.basis) == ("unsupported", "error") for r in spent)
    assert outcomes["expert_parallel"] in ("not-applicable", "error")


def test_capacity_ramp_stops_at_the_first_errors(tmp_path: Path) -> None:
    options = FAST.model_copy(update={"features": ["capacity"], "capacity_max": 32, "capacity_budget_s": 10})
    with FakeFeaturesServer(log_text=engine_log(), tmp=tmp_path) as fake:
        fake.behaviour.max_in_flight = 3
        fake.behaviour.completion_delay_s = 0.3
        m = _probe(fake, _model(tmp_path), options)
    [res] = m.features
    cap = res.capacity
    assert cap is not None and res.outcome == "supported"
    assert cap.ramp_stopped_by == "errors" and cap.max_ok_concurrency == 2
    assert [s.concurrency for s in cap.ramp] == [1, 2, 4]
    assert cap.ramp[-1].errors >= 1 and "HTTP 503" in (cap.ramp[-1].first_error or "")
    assert any("KV cache holds 50000 tokens" in r for r in cap.reasons)


def test_capacity_ramp_respects_its_time(tmp_path: Path) -> None:
    options = FAST.model_copy(update={"features": ["capacity"], "capacity_max": 64, "capacity_budget_s": 1.5})
    with FakeFeaturesServer(log_text=engine_log(), tmp=tmp_path) as fake:
        fake.behaviour.completion_delay_s = 0.6
        m = _probe(fake, _model(tmp_path), options)
    cap = m.features[0].capacity
    assert cap is not None and cap.ramp_stopped_by == "budget"
    assert 1 <= cap.max_ok_concurrency < 64


def test_features_json_round_trip(tmp_path: Path) -> None:
    with FakeFeaturesServer(log_text=engine_log(), tmp=tmp_path) as fake:
        m = _probe(fake, _model(tmp_path), FAST.model_copy(update={"features": ["graph_mode", "multimodal"]}))
    path = write_features(tmp_path / "features.json", m)
    doc = json.loads(path.read_text())
    assert doc["kind"] == "features" and doc["schema_version"] and doc["features_schema"] == 1
    assert [r["feature"] for r in doc["features"]] == ["graph_mode", "multimodal"]
    assert load_features(path) == m
    assert path.stat().st_mode & 0o077 == 0


def test_sized_prompts_never_overrun_max_model_len(tmp_path: Path) -> None:
    with FakeFeaturesServer() as fake:
        fake.behaviour.max_model_len = 300
        m = _probe(fake, _model(tmp_path), FAST.model_copy(update={"features": ["long_context"]}))
        sent = [r["prompt"] for r in fake.behaviour.requests if "prompt" in r]
    assert m.decisions() == {"long_context": "supported"}
    assert sent and max(count_tokens(p) for p in sent) <= 300


def test_without_tokenize_the_prompt_is_sized_from_usage(tmp_path: Path) -> None:
    with FakeFeaturesServer() as fake:
        fake.behaviour.tokenize = False
        m = _probe(fake, _model(tmp_path), FAST.model_copy(update={"features": ["long_context"]}))
    [res] = m.features
    assert res.outcome == "supported", res.evidence
    assert res.metrics["prompt_tokens"] <= 1024
