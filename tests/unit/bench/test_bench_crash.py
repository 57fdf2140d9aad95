"""A real server process killed in the middle of a benchmark (the calibration server, no model)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import httpx
from tests.fakes.tokenizer import FakeWordTokenizer

from stackcert.bench.profiles import Profile, ScaleLimits
from stackcert.bench.runner import load_records, run_bench
from stackcert.engines.process import ManagedProcess


class ProcessBackedServer:
    """The Server protocol over a real child process."""

    def __init__(self, proc: ManagedProcess, port: int, log: Path) -> None:
        self.proc, self.base_url, self.log_path = proc, f"http://127.0.0.1:{port}", log
        self.served_model = "calibration"

    def alive(self) -> bool:
        return self.proc.running

    def findings(self) -> list[object]:
        return []


def test_killed_server_keeps_records_and_marks_crash(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    argv = [
        sys.executable,
        "-m",
        "stackcert.bench.calibration",
        "--port",
        str(port),
        "--ttft",
        "0.01",
        "--itl",
        "0.02",
    ]
    with ManagedProcess(argv, log_path=log) as proc:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        server = ProcessBackedServer(proc, port, log)
        # 40 requests of 10 chunks at concurrency 2 take ~4 s: kill it after 1.5 s
        killer = threading.Timer(1.5, lambda: proc.stop(grace=1.0))
        killer.start()
        prof = Profile(name="long", input_len=4, output_len=10, num_prompts=40, concurrency=[2], warmup=0)
        res = run_bench(server, FakeWordTokenizer(), [prof], out_dir=tmp_path / "bench", limits=ScaleLimits())
        killer.join()
    assert res.status == "crash" and "stopped answering" in res.reason
    assert res.log_excerpt and "calibration server listening" in res.log_excerpt
    recs = load_records(tmp_path / "bench" / "requests.jsonl")
    ok = [r for r in recs if r.success]
    assert 4 <= len(ok) < 40  # what was measured before the kill is on disk
    assert any(not r.success and r.error for r in recs)
    assert len(recs) == 40  # every request is accounted for: measured or failed with a reason
