"""The guard a docker or ssh target runs around every command (standard library only).

stackcert sends this file's source as ``python -c SOURCE`` and writes one JSON line to its stdin:
``{"argv": [...], "env": {...}, "cwd": ...}`` — the command and its environment never appear on a
command line (no secret in ``ps``, no shell quoting of user data). The guard starts the command in
its own process group and keeps reading stdin: stdin is the other end of the `docker exec -i` or
ssh channel, which closes when stackcert stops the command or dies (even by SIGKILL). Then the
guard stops the group (SIGTERM, grace, SIGKILL) and exits with the command's code.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading


def _kill_group(pgid: int, exited: threading.Event, grace: float) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    exited.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def main() -> int:
    """Read the command from stdin, run it in its own group, stop the group when stdin closes."""
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline() or b"{}")
    argv = header.get("argv") or []
    if not argv:
        sys.stderr.write("stackcert guard: no command received\n")
        return 2
    env = dict(os.environ)
    for name in header.get("unset") or []:  # the stack's unset_env, applied to the target's own env
        env.pop(name, None)
    env.update(header.get("env") or {})
    grace = float(header.get("grace", 8.0))
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, env=env, cwd=header.get("cwd") or None, start_new_session=True
        )
    except OSError as exc:
        sys.stderr.write(f"stackcert guard: cannot start {argv[0]}: {exc}\n")
        return 127
    stopping = threading.Event()
    exited = threading.Event()

    def stop(*_: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=_kill_group, args=(proc.pid, exited, grace), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)

    def watch_stdin() -> None:
        try:
            while os.read(0, 4096):
                pass
        except (OSError, ValueError):
            pass
        stop()

    threading.Thread(target=watch_stdin, daemon=True).start()
    code = proc.wait()
    exited.set()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return int(code) if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
