"""What docker and ssh targets share: the remote guard protocol, short commands, files, probes."""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from stackcert.targets import remote_guard
from stackcert.targets.base import Launch, Output, Target

GUARD_SOURCE = Path(remote_guard.__file__).read_text(encoding="utf-8")
STOP_GRACE_S = 8.0
_FREE_PORT = "import socket,sys;s=socket.socket();s.bind((sys.argv[1],0));print(s.getsockname()[1])"
_EXISTS = "import os,sys;sys.exit(0 if os.path.exists(sys.argv[1]) else 1)"
_FRESH_DIR = "import os,shutil,sys;shutil.rmtree(sys.argv[1],ignore_errors=True);os.makedirs(sys.argv[1])"


def guard_header(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: Path | None,
    grace: float,
    unset: Sequence[str] = (),
) -> bytes:
    """The JSON line the remote guard reads first: command, variables to set and to unset on top of
    the target's own environment, folder, stop grace."""
    payload = {
        "argv": [str(a) for a in argv],
        "env": dict(env or {}),
        "unset": list(unset),
        "cwd": str(cwd) if cwd else None,
        "grace": grace,
    }
    return (json.dumps(payload) + "\n").encode()


def _drain(stream: IO[bytes], sink: list[bytes]) -> None:
    with contextlib.suppress(OSError, ValueError):
        for chunk in iter(lambda: stream.read(65536), b""):
            sink.append(chunk)


def run_launch(launch: Launch, timeout: float) -> Output:
    """Run a launched command to completion: stdin stays open (closing it stops the remote command)."""
    try:
        proc = subprocess.Popen(
            launch.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return Output(None, "", f"cannot start {launch.argv[0]}: {exc}")
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=_drain, args=(s, sink), daemon=True)
        for s, sink in ((proc.stdout, out), (proc.stderr, err))
    ]
    for r in readers:
        r.start()
    timed_out = False
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(launch.stdin_header or b"")
        proc.stdin.flush()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        stop_client(proc, grace=STOP_GRACE_S)
    for r in readers:
        r.join(timeout=5)
    code = None if timed_out else proc.returncode
    return Output(
        code, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace"), timed_out
    )


def stop_client(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """Close the client's stdin (the remote guard then stops its group), wait, kill the client at the end."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout=grace + 10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


class RemoteTarget(Target):
    """A target reached through a client command (`docker exec -i`, `ssh`) running the remote guard."""

    @property
    def python(self) -> str:
        """The configured target Python, else `python3` on the target's PATH."""
        return self.spec.python or "python3"

    @abc.abstractmethod
    def client_argv(self, remote_argv: Sequence[str], forwards: Sequence[tuple[int, int]] = ()) -> list[str]:
        """The local client command that runs `remote_argv` in the target."""

    def launch(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: Path | None,
        forwards: Sequence[tuple[int, int]] = (),
        grace: float = STOP_GRACE_S,
        unset: Sequence[str] = (),
    ) -> Launch:
        """The client running the remote guard; the command and env travel in the stdin header
        (`env`: only what to set on top of the target's environment, see `base_env`)."""
        return Launch(
            argv=self.client_argv([self.python, "-c", GUARD_SOURCE], forwards),
            stdin_header=guard_header(argv, env, cwd, grace, unset),
        )

    def base_env(self) -> dict[str, str]:
        """Nothing: the target's own environment is the base there (this machine's means nothing)."""
        return {}

    def run(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Output:
        """Run a short command in the target through the guard (env: variables to set there)."""
        return run_launch(self.launch(argv, env, None), timeout)

    def free_port(self) -> int:
        """A port free right now on the address servers bind in the target."""
        host = self.expose(0).bind_host
        done = self.run([self.python, "-c", _FREE_PORT, host], timeout=self.spec.connect_timeout_s)
        if not done.ok or not done.stdout.strip().isdigit():
            raise OSError(
                f"could not find a free port in the {self.kind} target: {done.stderr.strip()[-300:]}"
            )
        return int(done.stdout.strip())

    def place(self, local: Path) -> Path:
        """A fresh, empty folder under the target's workdir, named after the local folder."""
        digest = hashlib.sha1(str(local.resolve()).encode()).hexdigest()[:12]
        placed = Path(PurePosixPath(self.spec.workdir) / digest / local.name)
        done = self.run([self.python, "-c", _FRESH_DIR, str(placed)], timeout=self.spec.connect_timeout_s)
        if not done.ok:
            raise OSError(
                f"could not create {placed} in the {self.kind} target: {done.stderr.strip()[-300:]}"
            )
        return placed

    def exists(self, path: Path) -> bool:
        """Whether the path exists in the target (False when the target cannot be asked)."""
        return self.run([self.python, "-c", _EXISTS, str(path)], timeout=self.spec.connect_timeout_s).ok
