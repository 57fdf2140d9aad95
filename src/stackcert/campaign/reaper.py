"""Ray's processes die with the campaign, even when it is killed (SIGKILL).

The embedded local Ray is started by `ray.init` in the campaign process; its raylet and GCS die with
it, but agents the raylet started (dashboard agent, runtime-env agent) outlive it. The reaper, run
as ``python -m stackcert.campaign.reaper PID``, notes the processes the campaign started (every few
seconds, while it lives) and watches its stdin, a pipe only the campaign holds: at EOF it kills the
noted ones still running. Engine guards and what they started are left to the guards themselves.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

import psutil

GUARD = "stackcert.engines.guard"
POLL_S = 2.0


def descendants(root: int) -> set[tuple[int, float]]:
    """(pid, start time) of root's descendants, not entering an engine guard's subtree."""
    found: set[tuple[int, float]] = set()
    stack = [root]
    while stack:
        try:
            children = psutil.Process(stack.pop()).children()
        except psutil.Error:
            continue
        for child in children:
            try:
                if child.pid == os.getpid() or GUARD in " ".join(child.cmdline()):
                    continue
                found.add((child.pid, child.create_time()))
            except psutil.Error:
                continue
            stack.append(child.pid)
    return found


def reap(noted: set[tuple[int, float]]) -> int:
    """SIGKILL the noted processes that still run (the same process: pid and start time); how many."""
    killed = 0
    for pid, started in noted:
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if psutil.Process(pid).create_time() == started:
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def main(argv: list[str]) -> int:
    """Note the campaign's descendants until stdin closes; then kill those still running."""
    root = int(argv[0])
    noted: set[tuple[int, float]] = set()
    while True:
        noted |= descendants(root)
        ready, _, _ = select.select([0], [], [], POLL_S)
        if ready and not os.read(0, 4096):
            break
    time.sleep(1.0)  # a clean shutdown has stopped them by now; only a killed campaign's remain
    reap(noted)
    return 0


def start_reaper() -> int:
    """Start the reaper for this process; the pipe's write end (close it to reap now)."""
    read_end, write_end = os.pipe()
    subprocess.Popen(
        [sys.executable, "-m", "stackcert.campaign.reaper", str(os.getpid())],
        stdin=read_end,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(read_end)
    os.set_inheritable(write_end, False)
    return write_end


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
