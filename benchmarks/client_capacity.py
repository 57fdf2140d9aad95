"""How precise and how fast is the benchmark client? stackcert's client vs vLLM's, side by side.

A calibration server (stackcert.bench.calibration, pinned to its own core) streams chunks on known
due times and logs when it really wrote each one; the client (pinned to another core) timestamps
arrivals. Both use time.perf_counter (CLOCK_MONOTONIC, one clock for the host), so per chunk:
  delivery lag = client arrival - server send     (the client's own timing error)
  ITL error    = client gap - server gap           (server lag subtracted)
Then the highest request rate each client sustains on one core (zero injected delay, short answers).

Usage: .venv/bin/python benchmarks/client_capacity.py [--concurrency 32 128 256 512 1024] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np

from stackcert.bench.client import ClientConfig, RequestSpec, make_session, send_request
from stackcert.bench.records import RequestRecord
from stackcert.bench.transport import StreamPool, bench_loop, gc_paused
from stackcert.engines.process import ManagedProcess

# Core 0 takes most interrupts and housekeeping: use 2 and 3 where the host has them.
CLIENT_CORE, SERVER_CORE = (2, 3) if (os.cpu_count() or 1) >= 4 else (0, 1)
CLIENTS = ["stackcert", "vllm"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(ttft: float, itl: float) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = [
        "taskset",
        "-c",
        str(SERVER_CORE),
        sys.executable,
        "-m",
        "stackcert.bench.calibration",
        "--port",
        str(port),
        "--ttft",
        str(ttft),
        "--itl",
        str(itl),
    ]
    proc = ManagedProcess(argv, log_path=Path("/tmp/stackcert-calibration.log")).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/v1/models", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("calibration server did not start")


# Each client returns, per request: (rid, absolute chunk arrival times).
Arrivals = list[tuple[int, list[float]]]


async def drive_stackcert(url: str, conc: int, n: int, out_len: int) -> tuple[Arrivals, float]:
    cfg = ClientConfig(base_url=url, model="calibration", continuous_usage=False, timeout_s=300)
    specs = [RequestSpec(prompt=f"rid={i}", prompt_len=1, output_len=out_len) for i in range(n)]
    res: Arrivals = []
    with gc_paused():  # as stackcert's bench runner does
        async with make_session(cfg, conc) as s:
            t0 = time.perf_counter()
            await closed_loop(conc, n, lambda i: _sc_one(s, cfg, specs[i], i, res))
            return res, time.perf_counter() - t0


async def _sc_one(s: StreamPool, cfg: ClientConfig, spec: RequestSpec, i: int, res: Arrivals) -> None:
    rec = await send_request(s, cfg, spec, RequestRecord(index=i))
    res.append((i, rec.chunk_times if rec.success else []))


async def drive_vllm(url: str, conc: int, n: int, out_len: int) -> tuple[Arrivals, float]:
    try:
        from vllm.benchmarks.lib.endpoint_request_func import (
            RequestFuncInput,
            async_request_openai_completions,
        )
    except ImportError:  # a host without vLLM: the same file, copied next to the script's path
        from vllm_erf import RequestFuncInput, async_request_openai_completions  # type: ignore[no-redef]

    # vLLM bench serve's own session settings (vllm/benchmarks/serve.py)
    conn = aiohttp.TCPConnector(
        limit=conc,
        limit_per_host=conc,
        ttl_dns_cache=300,
        use_dns_cache=True,
        keepalive_timeout=60,
        enable_cleanup_closed=True,
        force_close=False,
    )
    res: Arrivals = []
    async with aiohttp.ClientSession(
        connector=conn, trust_env=True, timeout=aiohttp.ClientTimeout(total=6 * 3600)
    ) as s:

        async def one(i: int) -> None:
            inp = RequestFuncInput(
                prompt=f"rid={i}",
                api_url=url + "/v1/completions",
                prompt_len=1,
                output_len=out_len,
                model="calibration",
                ignore_eos=True,
            )
            o = await async_request_openai_completions(inp, s)
            times = list(o.start_time + o.ttft + np.cumsum([0.0, *o.itl])) if o.success else []
            res.append((i, times))

        t0 = time.perf_counter()
        await closed_loop(conc, n, one)
        return res, time.perf_counter() - t0


async def closed_loop(conc: int, n: int, fn: Callable[[int], Any]) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await fn(i)

    await asyncio.gather(*(worker() for _ in range(conc)))


def errors(arrivals: Arrivals, log: list[list[float]]) -> dict[str, float]:
    sent: dict[tuple[int, int], tuple[float, float]] = {(int(r), int(k)): (d, s) for r, k, d, s in log}
    lags, itl_err, srv_lag = [], [], []
    failed = 0
    for rid, times in arrivals:
        if not times:
            failed += 1
            continue
        prev = None
        for k, t in enumerate(times):
            due_sent = sent.get((rid, k))
            if due_sent is None:
                continue
            due, s = due_sent
            lags.append(t - s)
            srv_lag.append(s - due)
            if prev is not None:
                itl_err.append(abs((t - prev[0]) - (s - prev[1])))
            prev = (t, s)
    q = lambda xs, p: float(np.percentile(xs, p) * 1000) if xs else float("nan")  # noqa: E731
    return {
        "lag_p50": q(lags, 50),
        "lag_p99": q(lags, 99),
        "itl_err_p50": q(itl_err, 50),
        "itl_err_p99": q(itl_err, 99),
        "server_lag_p99": q(srv_lag, 99),
        "failed": failed,
    }


def fetch_log(url: str) -> list[list[float]]:
    return list(httpx.get(url + "/calibration/log", timeout=60).json())


DRIVERS = {"stackcert": drive_stackcert, "vllm": drive_vllm}


def drive(name: str, args: tuple[Any, ...]) -> tuple[Arrivals, float]:
    """Each client on the event loop its own tool uses."""
    factory = bench_loop if name == "stackcert" else None  # vLLM's bench: asyncio.run
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(DRIVERS[name](*args))


def precision(concs: list[int], out_len: int, ttft: float, itl: float) -> None:
    proc, url = start_server(ttft, itl)
    try:
        print(
            f"\n## Timing error (injected TTFT {ttft * 1000:.0f} ms, ITL {itl * 1000:.0f} ms, "
            f"{out_len} chunks)"
        )
        print(
            "| streams | client | delivery lag p50 ms | p99 ms | ITL error p50 ms | p99 ms "
            "| server lag p99 ms | failed |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for ci, conc in enumerate(concs):
            order = CLIENTS if ci % 2 == 0 else CLIENTS[::-1]
            rows = {}
            for name in order:
                fetch_log(url)  # clear
                arr, _ = drive(name, (url, conc, conc * 2, out_len))
                rows[name] = errors(arr, fetch_log(url))
            for name in CLIENTS:
                e = rows[name]
                print(
                    f"| {conc} | {name} | {e['lag_p50']:.3f} | {e['lag_p99']:.3f} | {e['itl_err_p50']:.3f} | "
                    f"{e['itl_err_p99']:.3f} | {e['server_lag_p99']:.3f} | {e['failed']} |",
                    flush=True,
                )
    finally:
        proc.stop()


def capacity(conc: int, n: int, out_len: int, repeats: int) -> None:
    proc, url = start_server(0.0, 0.0)
    try:
        print(
            f"\n## Sustained rate on one core (no injected delay, {out_len} chunks/request, "
            f"concurrency {conc}, {n} requests, best of {repeats})"
        )
        print("| client | req/s | chunks/s | client CPU s | server CPU s | req per client CPU s |")
        print("|---|---:|---:|---:|---:|---:|")
        best: dict[str, tuple[float, float, float]] = {}
        for r in range(repeats):
            for name in CLIENTS if r % 2 == 0 else CLIENTS[::-1]:
                fetch_log(url)
                c0, s0 = time.process_time(), _cpu(proc.pid)
                arr, dur = drive(name, (url, conc, n, out_len))
                c1, s1 = time.process_time(), _cpu(proc.pid)
                ok = sum(1 for _, t in arr if t)
                rate = ok / dur
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, c1 - c0, s1 - s0)
        for name, (rate, ccpu, scpu) in best.items():
            print(
                f"| {name} | {rate:.0f} | {rate * out_len:.0f} | {ccpu:.2f} | {scpu:.2f} | {n / ccpu:.0f} |"
            )
        for name in CLIENTS[:-1]:
            print(f"\nratio {name}/vllm: {best[name][0] / best['vllm'][0]:.2f}x (wall rate)")
    finally:
        proc.stop()


def _cpu(pid: int | None) -> float:
    import psutil

    try:
        # the guard's descendants: taskset execs python, so that is the server itself
        kids = psutil.Process(pid).children(recursive=True)
        return float(sum(k.cpu_times().user + k.cpu_times().system for k in kids))
    except (psutil.Error, TypeError):
        return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, nargs="+", default=[32, 128, 256, 512, 1024])
    ap.add_argument("--out-len", type=int, default=32)
    ap.add_argument("--ttft", type=float, default=0.05)
    ap.add_argument("--itl", type=float, default=0.02)
    ap.add_argument("--rate-requests", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    print(
        f"# client_capacity  {time.strftime('%Y-%m-%d %H:%M')}  host cores {os.cpu_count()}  "
        f"client core {CLIENT_CORE}, server core {SERVER_CORE}"
    )
    precision(a.concurrency, a.out_len, a.ttft, a.itl)
    capacity(64, a.rate_requests, 8, a.repeats)


if __name__ == "__main__":
    main()
