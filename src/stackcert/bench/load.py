"""Load patterns: closed loop at a fixed concurrency, or open loop at a request rate.

Open-loop send times are precomputed as absolute offsets from the start (Poisson, or gamma for
burstiness, like vLLM), so a late send never shifts the following ones. Every record keeps the
intended send time next to the actual one: latency from the intended time exposes coordinated omission.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np

from stackcert.bench.client import ClientConfig, RequestSpec, send_request
from stackcert.bench.records import RequestRecord
from stackcert.bench.transport import StreamPool

OnRecord = Callable[[RequestRecord], None]


def arrival_offsets(n: int, rate: float, *, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    """Absolute send offsets (s) of n requests: gamma intervals with mean 1/rate (shape 1 = Poisson)."""
    if rate == float("inf") or rate <= 0:
        return [0.0] * n
    rng = np.random.default_rng(seed)
    theta = 1.0 / (rate * burstiness)
    gaps = rng.gamma(shape=burstiness, scale=theta, size=n)
    gaps[0] = 0.0  # the first request goes out at the start
    return [float(x) for x in np.cumsum(gaps)]


async def run_closed_loop(
    session: StreamPool,
    cfg: ClientConfig,
    specs: Sequence[RequestSpec],
    concurrency: int,
    *,
    make_record: Callable[[int], RequestRecord],
    on_record: OnRecord | None = None,
) -> tuple[list[RequestRecord], float]:
    """`concurrency` workers, each sending its next request as soon as the previous one ends."""
    queue = list(enumerate(specs))
    queue.reverse()
    out: list[RequestRecord] = []

    async def worker() -> None:
        while queue:
            i, spec = queue.pop()
            rec = make_record(i)
            rec.intended_start = time.perf_counter()
            await send_request(session, cfg, spec, rec)
            out.append(rec)
            if on_record:
                on_record(rec)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(specs))))))
    return out, time.perf_counter() - t0


async def run_open_loop(
    session: StreamPool,
    cfg: ClientConfig,
    specs: Sequence[RequestSpec],
    offsets: Sequence[float],
    *,
    max_concurrency: int | None = None,
    make_record: Callable[[int], RequestRecord],
    on_record: OnRecord | None = None,
) -> tuple[list[RequestRecord], float]:
    """Send request i at start + offsets[i]; an optional cap on requests in flight."""
    sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    out: list[RequestRecord] = []

    async def one(i: int, spec: RequestSpec, intended: float) -> None:
        rec = make_record(i)
        rec.intended_start = intended
        if sem is None:
            await send_request(session, cfg, spec, rec)
        else:
            async with sem:
                await send_request(session, cfg, spec, rec)
        out.append(rec)
        if on_record:
            on_record(rec)

    t0 = time.perf_counter()
    tasks = []
    for i, (spec, off) in enumerate(zip(specs, offsets, strict=True)):
        due = t0 + off
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, spec, due)))
    await asyncio.gather(*tasks)
    return out, time.perf_counter() - t0
