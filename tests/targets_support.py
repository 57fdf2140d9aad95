"""Real docker and ssh targets for the tests: a container built locally and an sshd on 127.0.0.1.

No registry and no download: the container's image is `docker import` of an empty root filesystem
skeleton; this machine's system folders, Python, checkout (with its venv) and demo model are
bind-mounted read-only at the same paths, so the target runs the same stackcert and vLLM. The sshd
runs with its own config, host key and client key in a temporary folder, on a free 127.0.0.1 port,
and is stopped with the session. scripts/services.sh (called by `.ci/run`) installs and starts
dockerd; with STACKCERT_REQUIRE_TARGETS=1 a missing daemon fails these tests instead of skipping.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackcert.paths import stackcert_home
from stackcert.targets import TargetSpec

REPO = Path(__file__).resolve().parents[1]
IMAGE = "stackcert-test:skeleton"
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc")


def unavailable(what: str) -> None:
    """Skip, or fail under STACKCERT_REQUIRE_TARGETS=1 (CI: .ci/run starts the services)."""
    if os.environ.get("STACKCERT_REQUIRE_TARGETS") == "1":
        pytest.fail(f"{what} (STACKCERT_REQUIRE_TARGETS=1: scripts/services.sh should have provided it)")
    pytest.skip(what)


def _docker(
    *args: str, timeout: float = 60, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=stdin, check=False)


def _skeleton_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in (
            "usr",
            "lib",
            "lib64",
            "bin",
            "sbin",
            "etc",
            "root",
            "tmp",
            "proc",
            "sys",
            "dev",
            "work",
        ):
            info = tarfile.TarInfo(name)
            host = Path("/") / name
            if host.is_symlink():  # merged /usr: /bin -> usr/bin, as on this machine
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(host)
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
    return buf.getvalue()


def _mounts() -> list[str]:
    paths = [p for p in SYSTEM_DIRS if Path(p).is_dir() and not Path(p).is_symlink()]
    extra = [Path(sys.base_prefix).resolve(), REPO, stackcert_home()]
    for p in extra:
        if p.is_dir() and not any(str(p).startswith(s + "/") or str(p) == s for s in paths):
            paths.append(str(p))
    return [arg for p in paths for arg in ("-v", f"{p}:{p}:ro")]


def venv_python() -> str:
    """The venv's Python at its own (bind-mounted) path: the same stackcert and vLLM in the target."""
    return str(Path(sys.executable).absolute())


class Container:
    """A running test container; removed with `remove()`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def spec(self) -> TargetSpec:
        """The target spec naming this container."""
        return TargetSpec(kind="docker", container=self.name, python=venv_python())

    def ps(self) -> str:
        """The container's process list (ps of this machine's /bin, bind-mounted)."""
        return _docker("exec", self.name, "ps", "-eo", "pid,pgid,args").stdout.decode(errors="replace")

    def remove(self) -> None:
        """Force-remove the container."""
        _docker("rm", "-f", self.name)


def start_container(tag: str) -> Container:
    """Build the skeleton image if needed and run a container of it (sleep infinity)."""
    if shutil.which("docker") is None:
        unavailable("the docker CLI is not installed")
    if _docker("info", timeout=20).returncode != 0:
        unavailable("no Docker daemon answers")
    if _docker("image", "inspect", IMAGE).returncode != 0:
        done = _docker("import", "-", IMAGE, stdin=_skeleton_tar())
        assert done.returncode == 0, done.stderr.decode()
    name = f"stackcert-test-{tag}-{os.getpid()}"
    _docker("rm", "-f", name)
    # vLLM's CPU engine needs more than docker's 64 MiB /dev/shm.
    done = _docker(
        "run", "-d", "--name", name, "--shm-size", "2g", *_mounts(), IMAGE, "/bin/sleep", "infinity"
    )
    assert done.returncode == 0, done.stderr.decode()
    return Container(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SshServer:
    """An sshd on 127.0.0.1 with its own keys; `spec()` names it as a target."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = (
            os.environ.get("USER")
            or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        )

    @property
    def log(self) -> Path:
        """sshd's log file."""
        return self.folder / "sshd.log"

    def start(self) -> SshServer:
        """Write keys and config, start sshd, wait until it accepts connections."""
        f = self.folder
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(f / key)], check=True)
        (f / "authorized_keys").write_text((f / "client_key.pub").read_text())
        (f / "authorized_keys").chmod(0o600)
        host_pub = " ".join((f / "host_key.pub").read_text().split()[:2])
        (f / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        (f / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {f / 'host_key'}\n"
            f"AuthorizedKeysFile {f / 'authorized_keys'}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
            f"UsePAM no\nPidFile {f / 'sshd.pid'}\nAllowTcpForwarding local\nSubsystem sftp internal-sftp\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        self.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-f", str(f / "sshd_config"), "-E", str(self.log)],
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"sshd did not start: {self.log.read_text() if self.log.exists() else ''}")

    def spec(self, **changes: object) -> TargetSpec:
        """The target spec for this server (host key checked against its known_hosts)."""
        data: dict[str, object] = {
            "kind": "ssh",
            "host": f"{self.user}@127.0.0.1:{self.port}",
            "identity_file": self.folder / "client_key",
            "known_hosts": self.folder / "known_hosts",
            "python": venv_python(),
        }
        data.update(changes)
        return TargetSpec.model_validate(data)

    def stop(self) -> None:
        """Stop sshd (its own process group; sessions it forked end with their clients)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


def ssh_server(folder: Path) -> Iterator[SshServer]:
    """Start an sshd for a fixture; stopped after."""
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh") is None:
        unavailable("openssh-server / openssh-client are not installed")
    server = SshServer(folder).start()
    try:
        yield server
    finally:
        server.stop()
