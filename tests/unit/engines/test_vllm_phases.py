"""Start-up phases read from vLLM's log lines: a crash in the profile run is not 'loading_weights'."""

from __future__ import annotations

from stackcert.engines.vllm import VLLM_PHASES


def _phase(line: str) -> str | None:
    """The phase the first matching rule names, as the server's log watcher applies them."""
    return next((r.phase for r in VLLM_PHASES if r.pattern.search(line)), None)


def test_weights_loaded_then_profile_run() -> None:
    # lines of the H100 run (docs/results/gpu-vllm-gems.md, session 3), vLLM 0.26.0
    assert _phase("INFO [default_loader.py:291] Loading weights took 0.48 seconds") == "profiling"
    assert _phase("INFO [gpu_model_runner.py:2420] Model loading took 0.5 GiB and 1.2 seconds") == "profiling"
    assert _phase("INFO Starting to load model /tmp/gemma-3-270m...") == "loading_weights"
    assert _phase("INFO Loading safetensors checkpoint shards: 100% Completed") == "loading_weights"
    assert _phase("INFO Available routes are:") == "serving"
