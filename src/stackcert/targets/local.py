"""The local target: commands run on this machine, servers listen on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from stackcert.targets.base import Exposure, Output, Target, TargetInfo

LOOPBACK = "127.0.0.1"


def local_free_port() -> int:
    """A port free right now on 127.0.0.1 (a race remains: callers retry on 'address in use')."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def run_local(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None, stdin: bytes | None = None
) -> Output:
    """Run argv here in its own process group; at the limit the whole group is killed."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        return Output(None, "", f"cannot start {argv[0]}: {exc}")
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Output(None, out.decode(errors="replace"), err.decode(errors="replace"), timed_out=True)
    return Output(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


class LocalTarget(Target):
    """This machine: the engines' processes are stackcert's own children."""

    @property
    def python(self) -> str:
        """The target Python: the configured one, else the interpreter running stackcert."""
        return self.spec.python or sys.executable

    def run(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Output:
        """Run argv here (env: variables on top of this process's environment)."""
        return run_local(argv, timeout=timeout, env={**os.environ, **env} if env else None)

    def expose(self, port: int) -> Exposure:
        """Servers listen on 127.0.0.1 and are reached there."""
        return Exposure(LOOPBACK, LOOPBACK, port)

    def free_port(self) -> int:
        """A free port on 127.0.0.1."""
        return local_free_port()

    def place(self, local: Path) -> Path:
        """The run folder itself: engines write into it directly."""
        local.mkdir(parents=True, exist_ok=True)
        return local

    def fetch(self, placed: Path, local: Path) -> None:
        """Nothing to copy: `placed` is `local`."""

    def exists(self, path: Path) -> bool:
        """Whether the path exists on this machine."""
        return path.exists()

    def describe(self) -> TargetInfo:
        """This machine's host name and the Python in use."""
        return TargetInfo(
            kind="local", name=platform.node() or "this machine", python=self.python, bind_host=LOOPBACK
        )
