"""Supervised child processes: own process group, log file, timeout, no orphans.

Every engine or probe process stackcert starts goes through :class:`ManagedProcess`. On the local
target the child runs under :mod:`stackcert.engines.guard`, which kills the child's whole process
group when stackcert goes away, even by SIGKILL. On a docker or ssh target the local process is the
client (`docker exec -i`, `ssh`) and the target's remote guard does the same there when the
client's stdin closes. We only ever signal process groups we created.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stackcert.errors import StepTimeout
from stackcert.targets import RemoteTarget, Target
from stackcert.targets.remote import stop_client

_LIVE: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


@dataclass(frozen=True)
class Completed:
    """How a finished command ended: its argv, exit code (None if killed at timeout), time and log."""

    argv: list[str]
    returncode: int | None
    timed_out: bool
    duration_s: float
    log_path: Path


class ManagedProcess:
    """One child command with its log file, in its own process group, behind a guard."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        target: Target | None = None,
        forwards: Sequence[tuple[int, int]] = (),
        unset: Sequence[str] = (),
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.target = target
        self.forwards = tuple(forwards)  # (local, target) ports the ssh client forwards
        self.unset = tuple(unset)  # remote only: names removed from the target's environment
        self.log_path = log_path
        base = target.base_env() if target is not None else dict(os.environ)
        self.env = dict(env) if env is not None else base
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipe_w: int | None = None
        self.started_at: float | None = None

    @property
    def pid(self) -> int | None:
        """PID of the guard (the engine itself is its child, leader of its own group)."""
        return self._proc.pid if self._proc else None

    def start(self) -> ManagedProcess:
        """Start the command under its guard, output appended to the log (0600); returns self."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if isinstance(self.target, RemoteTarget):
            return self._start_remote(self.target)
        read_end, write_end = os.pipe()
        os.set_inheritable(read_end, True)
        # 0600: an engine log may echo its environment (keys of the stack's env)
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "stackcert.engines.guard", "--", *self.argv],
                stdin=read_end,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            os.close(read_end)
            log.close()
        # Keep the write end private: children we start later must not hold it open.
        os.set_inheritable(write_end, False)
        self._pipe_w = write_end
        self.started_at = time.monotonic()
        _LIVE.add(self)
        return self

    def _start_remote(self, target: RemoteTarget) -> ManagedProcess:
        """Start the target's client with the remote guard; its stdin (ours alone) carries the command."""
        launch = target.launch(self.argv, self.env, self.cwd, self.forwards, unset=self.unset)
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        try:
            self._proc = subprocess.Popen(
                launch.argv,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.write(launch.stdin_header or b"")
            self._proc.stdin.flush()
        self.started_at = time.monotonic()
        _LIVE.add(self)
        return self

    def poll(self) -> int | None:
        """The guard's exit code, None while it runs or before start."""
        return self._proc.poll() if self._proc else None

    @property
    def running(self) -> bool:
        """Whether the process has started and not yet exited."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit (at most timeout seconds); its exit code."""
        if self._proc is None:
            raise RuntimeError("process not started")
        return self._proc.wait(timeout=timeout)

    def stop(self, grace: float = 10.0) -> int | None:
        """Stop the guard, which stops the engine group (SIGTERM, then SIGKILL)."""
        proc = self._proc
        if proc is None:
            return None
        if isinstance(self.target, RemoteTarget):
            stop_client(proc, grace=grace)
            _LIVE.discard(self)
            return proc.returncode
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace + 5)
            except subprocess.TimeoutExpired:
                # The guard itself is stuck: kill its session (it leads its own group).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._pipe_w is not None:
            os.close(self._pipe_w)
            self._pipe_w = None
        _LIVE.discard(self)
        return proc.returncode

    def __enter__(self) -> ManagedProcess:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    raise_on_timeout: bool = False,
    target: Target | None = None,
) -> Completed:
    """Run a command to completion under supervision (on `target`, default here), with a hard time limit."""
    started = time.monotonic()
    proc = ManagedProcess(argv, log_path=log_path, env=env, cwd=cwd, target=target).start()
    timed_out = False
    try:
        code: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        code = None
    finally:
        proc.stop(grace=3.0)
    if timed_out and raise_on_timeout:
        raise StepTimeout(f"command ran past its {timeout:.0f}s limit: {argv[0]}", where=str(log_path))
    return Completed(list(proc.argv), code, timed_out, time.monotonic() - started, log_path)


@atexit.register
def _stop_all() -> None:
    for proc in list(_LIVE):
        proc.stop(grace=3.0)
