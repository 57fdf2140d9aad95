"""The guard must leave no orphan: not on stop(), not when its parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from stackcert.engines.process import ManagedProcess, run_command


def _procs_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _wait_gone(marker: str, timeout: float = 15.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in _procs_with(marker) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not left:
            return []
        time.sleep(0.2)
    return left


def _tree_script(marker: str) -> list[str]:
    # A parent that spawns a grandchild and both sleep: stands in for an engine and its workers.
    code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "{marker}-worker"])
        print("engine up", flush=True)
        time.sleep(300)
        """
    )
    return [sys.executable, "-c", code, f"{marker}-engine"]


def test_stop_kills_the_whole_group(tmp_path: Path) -> None:
    marker = f"stackcert-test-{os.getpid()}-stop"
    proc = ManagedProcess(_tree_script(marker), log_path=tmp_path / "log").start()
    deadline = time.monotonic() + 10
    while len(_procs_with(marker)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_procs_with(marker)) >= 3  # guard + engine + worker
    proc.stop(grace=2)
    assert _wait_gone(marker) == []
    assert "engine up" in (tmp_path / "log").read_text()


def test_sigkill_of_parent_leaves_no_orphan(tmp_path: Path) -> None:
    marker = f"stackcert-test-{os.getpid()}-kill"
    parent_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from stackcert.engines.process import ManagedProcess
        argv = {_tree_script(marker)!r}
        ManagedProcess(argv, log_path=Path({str(tmp_path / "log")!r})).start()
        print("started", flush=True)
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 10
    while len(_procs_with(marker)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_procs_with(marker)) >= 3
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert _wait_gone(marker) == []


def test_run_command_times_out_and_reports(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    done = run_command(sleeper, timeout=1, log_path=tmp_path / "l")
    assert done.timed_out and done.returncode is None and done.duration_s < 20
    ok = run_command([sys.executable, "-c", "print('hi')"], timeout=30, log_path=tmp_path / "l2")
    assert ok.returncode == 0 and not ok.timed_out
    assert (tmp_path / "l2").read_text().strip() == "hi"
