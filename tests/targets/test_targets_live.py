"""The docker and ssh targets against a real Docker daemon and a real sshd (no engine: seconds).

Each target runs commands with their exit codes, passes environment variables without putting them
on a command line, copies files back, kills a command at its limit, and leaves no process behind
when stackcert dies (SIGKILL): the remote guard stops the command's group when the channel closes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.targets_support import IMAGE, Container, SshServer

from stackcert.errors import UsageError
from stackcert.targets import DockerTarget, RemoteTarget, SshTarget, Target, open_target
from stackcert.targets.spec import TargetSpec


@pytest.fixture(params=["docker", "ssh"])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "docker":
        box: Container = request.getfixturevalue("docker_container")
        return open_target(box.spec())
    server: SshServer = request.getfixturevalue("sshd")
    return open_target(server.spec())


def _remote_pids(target: Target, marker: str) -> list[str]:
    """Processes in the target whose command line holds `marker` (our guard's own process excluded)."""
    code = (
        "import os,sys\n"
        "for p in os.listdir('/proc'):\n"
        "  if p.isdigit() and int(p)!=os.getpid():\n"
        "    try: c=open('/proc/'+p+'/cmdline','rb').read().replace(b'\\0',b' ').decode()\n"
        "    except OSError: continue\n"
        "    if sys.argv[1] in c and 'cmdline' not in c: print(p)\n"
    )
    done = target.run([target.python, "-c", code, marker], timeout=20)
    assert done.ok, done.stderr
    return done.stdout.split()


def test_commands_run_with_their_exit_code_env_and_output(target: Target) -> None:
    target.check()
    secret = "s3cr3t value with 'quotes' and $dollars"
    done = target.run(
        ["sh", "-c", 'printf "%s" "$STACKCERT_T"; exit 7'], timeout=20, env={"STACKCERT_T": secret}
    )
    assert done.returncode == 7 and done.stdout == secret and not done.timed_out
    assert isinstance(target, RemoteTarget)
    launch = target.launch(["true"], {"STACKCERT_T": secret}, None)
    # The value travels in the guard's stdin header, never on a command line (ps would show it).
    assert not any(secret in arg for arg in launch.argv) and secret.encode() in (launch.stdin_header or b"")


def test_files_come_back_and_missing_ones_are_no_error(target: Target, tmp_path: Path) -> None:
    local = tmp_path / "stack"
    placed = target.place(local)
    assert target.exists(placed) and not target.exists(placed / "nope")
    made = target.run(
        ["sh", "-c", f"mkdir -p {placed}/operators && echo 42 > {placed}/operators/a.json"], timeout=20
    )
    assert made.ok, made.stderr
    target.fetch(placed, local)
    assert (local / "operators" / "a.json").read_text().strip() == "42"
    target.fetch(placed / "nothing-here", tmp_path / "other")  # no error
    assert target.place(local) == placed and not target.exists(placed / "operators")  # fresh again


def test_a_command_past_its_limit_is_killed_in_the_target(target: Target) -> None:
    marker = f"317.{os.getpid()}"
    t0 = time.monotonic()
    done = target.run(["sleep", marker], timeout=2)
    assert done.timed_out and done.returncode is None and time.monotonic() - t0 < 20
    assert _remote_pids(target, f"sleep {marker}") == []


def test_no_orphan_when_stackcert_is_killed(target: Target, tmp_path: Path) -> None:
    """A child python starts a ManagedProcess on the target, then dies by SIGKILL: the remote
    command goes too (the client's stdin closes, the remote guard stops the group)."""
    marker = f"318.{os.getpid()}"
    spec_json = target.spec.model_dump_json()
    script = (
        "import sys,time\n"
        "from pathlib import Path\n"
        "from stackcert.engines.process import ManagedProcess\n"
        "from stackcert.targets import open_target, TargetSpec\n"
        "t = open_target(TargetSpec.model_validate_json(sys.argv[1]))\n"
        f"ManagedProcess(['sh','-c','sleep {marker}'], log_path=Path(sys.argv[2]), target=t).start()\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, spec_json, str(tmp_path / "p.log")], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 20
    while not _remote_pids(target, f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _remote_pids(target, f"sleep {marker}"), "the command never started in the target"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    deadline = time.monotonic() + 20
    while _remote_pids(target, f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _remote_pids(target, f"sleep {marker}") == [], "orphan left in the target"
    clients = [
        p for p in psutil.process_iter(["cmdline"]) if "docker exec -i" in " ".join(p.info["cmdline"] or [])
    ]
    assert not [p for p in clients if p.ppid() == child.pid]


def test_a_missing_or_stopped_container_is_one_line(docker_container: Container) -> None:
    with pytest.raises(UsageError, match="not found"):
        DockerTarget(TargetSpec(kind="docker", container="stackcert-test-no-such-box")).check()
    info = DockerTarget(docker_container.spec()).describe()
    assert info.detail["image"] == IMAGE and info.bind_host.count(".") == 3 and info.bind_host != "127.0.0.1"
    name = f"stackcert-test-created-{os.getpid()}"
    subprocess.run(["docker", "create", "--name", name, IMAGE, "/bin/true"], check=True, capture_output=True)
    try:
        with pytest.raises(UsageError, match="is not running") as err:
            DockerTarget(TargetSpec(kind="docker", container=name)).check()
        assert err.value.fix == f"docker start {name}"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_ssh_refuses_an_unknown_host_key_and_a_wrong_key(sshd: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(UsageError, match="host key not known") as err:
        SshTarget(sshd.spec(known_hosts=empty)).check()
    assert "ssh-keyscan" in (err.value.fix or "")
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    with pytest.raises(UsageError, match="login refused"):
        SshTarget(sshd.spec(identity_file=other)).check()
    with pytest.raises(UsageError, match="known_hosts file not found"):
        SshTarget(sshd.spec(known_hosts=tmp_path / "missing")).check()


def test_ssh_forwards_a_server_port(sshd: SshServer) -> None:
    import httpx

    from stackcert.engines.process import ManagedProcess

    target = SshTarget(sshd.spec())
    port = target.free_port()
    exposure = target.expose(port)
    assert exposure.url_port != port and exposure.forwards == ((exposure.url_port, port),)
    argv = [target.python, "-m", "http.server", "--bind", exposure.bind_host, str(port)]
    proc = ManagedProcess(
        argv, log_path=Path(f"/tmp/sc-fwd-{os.getpid()}.log"), target=target, forwards=exposure.forwards
    )
    with proc:
        answer: Any = None
        for _ in range(100):
            try:
                answer = httpx.get(exposure.base_url + "/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
    assert _remote_pids(target, f"http.server --bind 127.0.0.1 {port}") == []


def test_the_vllm_build_is_asked_in_the_target(target: Target) -> None:
    """The CPU-only engine options follow the target's vLLM, not this host's."""
    from stackcert.engines.vllm import cpu_build_on, is_cpu_build

    # The target mounts this machine's venv: same answer, but obtained there (a command in the target).
    assert cpu_build_on(target) == is_cpu_build()
    broken = open_target(target.spec.model_copy(update={"python": "/no/such/python"}))
    assert cpu_build_on(broken) is False


def test_the_target_keeps_its_own_environment(target: Target, tmp_path: Path) -> None:
    """Only the stack's variables travel: this machine's environment means nothing in the target, and
    the stack's unset_env removes a variable the target itself has."""
    from stackcert.engines.process import ManagedProcess

    os.environ["STACKCERT_ONLY_HERE"] = "local"
    try:
        log = tmp_path / "env.log"
        script = 'echo "here=${STACKCERT_ONLY_HERE:-absent} set=$STACKCERT_SET home=${HOME:-unset}"'
        with ManagedProcess(
            ["sh", "-c", script], log_path=log, env={"STACKCERT_SET": "yes"}, target=target, unset=["HOME"]
        ) as proc:
            proc.wait(timeout=30)
        assert log.read_text().strip() == "here=absent set=yes home=unset"
    finally:
        del os.environ["STACKCERT_ONLY_HERE"]
    # Without `unset`, the target's own HOME is there.
    assert target.run(["sh", "-c", "echo ${HOME:-unset}"], timeout=20).stdout.strip() != "unset"
