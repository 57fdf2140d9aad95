"""What a docker or ssh target costs per command, next to the tools it wraps run by hand.

    .venv/bin/python benchmarks/target_overhead.py [--repeat 20]

Needs a running Docker daemon and /usr/sbin/sshd (scripts/services.sh start): it starts the test
container and an sshd on 127.0.0.1 like the test suite (tests/targets_support.py) and removes them.

For each target it times a trivial command (`python -c pass` in the target's Python) through
stackcert's `Target.run` — the remote guard, the JSON header on stdin, the group supervision —
and the anchor: the same command through the bare client (`docker exec`, `ssh` with the same
options). The ratio is stackcert's overhead on top of the transport. It also times `check()` (the
preflight's cost) and a `place` + `fetch` round trip of a 1 MiB folder.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.targets_support import ssh_server, start_container

from stackcert.targets import RemoteTarget, Target, open_target


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _bare(target: RemoteTarget) -> list[str]:
    """The client command alone, running the same Python with no guard."""
    return target.client_argv([target.python, "-c", "pass"])


def measure(name: str, target: Target, repeat: int) -> list[str]:
    """One table row: command via stackcert, via the bare client, ratio, check, place+fetch."""
    assert isinstance(target, RemoteTarget)
    via = _median_ms(lambda: target.run([target.python, "-c", "pass"], timeout=30), repeat)
    bare = _median_ms(lambda: subprocess.run(_bare(target), capture_output=True, check=True), repeat)
    check = _median_ms(target.check, max(3, repeat // 4))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "stack"

        def round_trip() -> None:
            placed = target.place(local)
            target.run([target.python, "-c", f"open('{placed}/blob','wb').write(b'x'*1048576)"], timeout=30)
            target.fetch(placed, local)

        files = _median_ms(round_trip, max(3, repeat // 4))
    return [name, f"{via:.0f}", f"{bare:.0f}", f"{via / bare:.2f}", f"{check:.0f}", f"{files:.0f}"]


def main() -> int:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rows = []
    box = start_container("bench")
    try:
        rows.append(measure("docker", open_target(box.spec()), args.repeat))
    finally:
        box.remove()
    with tempfile.TemporaryDirectory() as tmp:
        for server in ssh_server(Path(tmp)):
            rows.append(measure("ssh", open_target(server.spec()), args.repeat))
    head = [
        "target",
        "stackcert run (ms)",
        "bare client (ms)",
        "ratio",
        "check() (ms)",
        "place+1MiB+fetch (ms)",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nmedians of {args.repeat} runs; python: {sys.executable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
