"""Where features are decided from: a real vLLM-CPU startup log, argv, /metrics text, config.json."""

from __future__ import annotations

import json
from pathlib import Path

from stackcert.features.checkpoint import read_checkpoint, traits
from stackcert.features.engine_config import (
    EngineView,
    info_labels,
    metric_sum,
    parse_prometheus,
    read_argv,
    read_log,
)

CAPTURED = Path(__file__).parents[2] / "e2e" / "captured_vllm_compiled_server_start.log"


def test_the_captured_compiled_vllm_log() -> None:
    view = EngineView()
    read_log(view, CAPTURED)
    assert view.has_log
    assert view.flag("enforce_eager") is False
    assert (
        view.get("compilation_mode") is not None and view.get("compilation_mode").value == "DYNAMO_TRACE_ONCE"
    )
    assert view.get("compilation_backend").value == "inductor"
    assert view.get("cudagraph_mode").value == "NONE"
    assert view.flag("enable_prefix_caching") is True and view.flag("enable_chunked_prefill") is True
    assert view.get("speculative_config").value == "None"
    assert view.number("kv_cache_tokens") == 110733
    assert view.get("max_concurrency").value == "54.07"
    assert view.number("max_model_len") == 2048
    setting = view.get("enforce_eager")
    assert setting is not None and setting.source.startswith("log line ")
    assert setting.line is not None and "enforce_eager=False" in setting.line and len(setting.line) < 300


def test_argv_flags_and_their_no_forms() -> None:
    view = EngineView()
    read_argv(
        view,
        [
            "python",
            "-m",
            "x",
            "--enforce-eager",
            "--no-enable-prefix-caching",
            "--max-num-seqs",
            "8",
            "--max-num-batched-tokens=512",
            "-cc",
            '{"mode": 3}',
            "--load-format",
            "dummy",
        ],
    )
    assert view.flag("enforce_eager") is True and view.flag("enable_prefix_caching") is False
    assert view.number("max_num_seqs") == 8 and view.number("max_num_batched_tokens") == 512
    assert view.get("compilation_config").value == '{"mode": 3}'
    assert view.get("load_format").describe() == "load_format=dummy (argv --load-format)"
    assert view.flag("max_num_seqs") is None and view.number("enforce_eager") is None


def test_the_log_wins_over_argv(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("Initializing a V1 LLM engine (v0.32.0) with config: enforce_eager=True, x=1\n")
    view = EngineView()
    read_log(view, log)
    read_argv(view, ["--max-model-len", "64"])
    assert view.get("enforce_eager").source == "log line 1"
    assert view.number("max_model_len") == 64


def test_prometheus_parsing_is_forgiving() -> None:
    text = (
        "# HELP x\n"
        'vllm:prefix_cache_hits_total{engine="0"} 512.0\n'
        'vllm:prefix_cache_hits_total{engine="1"} 128.0\n'
        "garbage line without value\n"
        "vllm:prefix_cache_queries_total NaN\n"
        'vllm:cache_config_info{block_size="128",enable_prefix_caching="True"} 1.0\n'
    )
    metrics = parse_prometheus(text)
    assert metric_sum(metrics, "vllm:prefix_cache_hits") == 640.0
    assert metric_sum(metrics, "vllm:prefix_cache_queries") is None  # NaN is no count
    assert metric_sum(metrics, "absent") is None
    assert info_labels(text, "vllm:cache_config_info") == {
        "block_size": "128",
        "enable_prefix_caching": "True",
    }


def test_checkpoint_traits(tmp_path: Path) -> None:
    demo = traits({"model_type": "gemma3_text", "max_position_embeddings": 32768})
    assert (
        not demo.is_moe and not demo.has_mtp and not demo.has_vision and demo.max_position_embeddings == 32768
    )
    ds = traits({"n_routed_experts": 256, "num_nextn_predict_layers": 1})
    assert (
        ds.is_moe
        and ds.expert_key == "n_routed_experts"
        and ds.has_mtp
        and ds.mtp_key == "num_nextn_predict_layers"
    )
    zero = traits({"num_nextn_predict_layers": 0, "num_experts": 1})
    assert not zero.has_mtp and zero.mtp_key == "num_nextn_predict_layers" and not zero.is_moe
    nested = traits({"text_config": {"num_local_experts": 16}, "vision_config": {"depth": 32}})
    assert nested.is_moe and nested.expert_key == "text_config.num_local_experts" and nested.has_vision
    weird = traits({"num_experts": True, "num_nextn_predict_layers": "2", "vision_config": None})
    assert not weird.is_moe and not weird.has_mtp and not weird.has_vision


def test_unreadable_checkpoints(tmp_path: Path) -> None:
    assert not read_checkpoint(None).readable
    assert "no config.json" in read_checkpoint(tmp_path).problem
    (tmp_path / "config.json").write_text("{not json")
    assert "unreadable" in read_checkpoint(tmp_path).problem
    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    assert "not a JSON object" in read_checkpoint(tmp_path).problem
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert not read_checkpoint(tmp_path).readable
