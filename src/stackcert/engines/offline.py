"""Offline generation in a child process: write IN.json, run the engine's module, read OUT.json."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from stackcert.config import StackSpec
from stackcert.engines.base import Completion, ModelRef, OfflineResult
from stackcert.engines.process import run_command
from stackcert.engines.server import event_finding
from stackcert.errors import UsageError
from stackcert.evidence.findings import Layer
from stackcert.evidence.logscan import scan_log

MODULES = {"vllm": "stackcert.engines.vllm_offline", "transformers": "stackcert.engines.hf_offline"}


def request_payload(
    stack: StackSpec,
    model: ModelRef,
    prompts: list[str],
    *,
    max_tokens: int,
    top_logprobs: int,
    run_dir: Path,
) -> dict[str, object]:
    """The IN.json an offline child reads: engine, model, engine args, operators, prompts, sampling."""
    return {
        "engine": stack.engine,
        "model": json.loads(model.model_dump_json()),
        "engine_args": stack.launch_args(),
        "operators": stack.operators.model_dump() if stack.operators else None,
        "effective_ops": str(run_dir / "effective_ops.json"),
        "prompts": prompts,
        "max_tokens": max_tokens,
        "top_logprobs": top_logprobs,
    }


def run(
    stack: StackSpec,
    model: ModelRef,
    prompts: list[str],
    *,
    max_tokens: int,
    top_logprobs: int,
    run_dir: Path,
    timeout: float,
) -> OfflineResult:
    """Generate offline in a child process; a crash or timeout gives a failed result with log findings."""
    if stack.engine not in MODULES:
        raise UsageError(
            f"the {stack.engine} engine has no offline mode",
            where=f"stack {stack.name}",
            fix="use a vllm or transformers stack for offline generation",
        )
    inp, out, log = run_dir / "offline_in.json", run_dir / "offline_out.json", run_dir / "offline.log"
    for p in (out, log):
        p.unlink(missing_ok=True)
    inp.write_text(
        json.dumps(
            request_payload(
                stack, model, prompts, max_tokens=max_tokens, top_logprobs=top_logprobs, run_dir=run_dir
            )
        )
    )
    started = time.monotonic()
    done = run_command(
        [sys.executable, "-m", MODULES[stack.engine], str(inp), str(out)],
        timeout=timeout,
        log_path=log,
        env=stack.child_env(dict(os.environ)),
    )
    duration = round(time.monotonic() - started, 2)
    result = OfflineResult(stack=stack.name, engine=stack.engine, ok=False, duration_s=duration, log_path=log)
    if done.returncode == 0 and out.exists():
        data = json.loads(out.read_text())
        result.completions = [Completion.model_validate(c) for c in data["completions"]]
        result.ok = True
        return result
    found = scan_log(log, step="offline", phase="generate", model_dirs=(str(model.path),))
    if done.timed_out:
        what, category = f"offline generation ran past its {timeout:.0f}s limit", "timeout"
    else:
        what, category = f"offline generation exited with code {done.returncode}", "exited"
    own = event_finding(category, what, phase="generate", log_path=log, layer=Layer.L5_SERVING)
    own.step = "offline"
    result.findings = [*found, own]
    return result
