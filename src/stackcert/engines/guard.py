"""A tiny supervisor between stackcert and an engine process.

Run as ``python -m stackcert.engines.guard -- ARGV...``. It starts ARGV in a new process group
and watches its own stdin, a pipe whose write end only stackcert holds. When stackcert exits for
any reason (even SIGKILL) the pipe closes, the guard sees EOF and kills the whole engine group, so
no orphan engine survives. SIGTERM/SIGINT to the guard stop the group gracefully, then by force.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

GRACE_SECONDS = float(os.environ.get("STACKCERT_GUARD_GRACE", "8"))


def _kill_group(pgid: int, exited: threading.Event, grace: float) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    # The main thread reaps the leader and sets `exited`; polling the Popen from here would not
    # see the exit while the main thread blocks in wait() (it holds the waitpid lock).
    exited.wait(grace)
    # The leader may be gone while workers of its group still run: always sweep the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    """Run `-- COMMAND` in its own group; kill the group when stackcert goes. Exit: 128+N for signal N."""
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: python -m stackcert.engines.guard -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    cmd = argv[1:]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    pgid = proc.pid
    stopping = threading.Event()
    exited = threading.Event()

    def stop(*_: object) -> None:
        # Never block here: this runs as a signal handler that interrupts proc.wait() below.
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=_kill_group, args=(pgid, exited, GRACE_SECONDS), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_parent() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop()

    threading.Thread(target=watch_parent, daemon=True).start()
    code = proc.wait()
    exited.set()
    # The leader ended by itself: sweep whatever it left in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
