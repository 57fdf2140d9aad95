"""The benchmark's event loop and its fairness helpers: turnstiles, GC pauses, uvloop."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
from collections.abc import Iterator


class Turnstile:
    """Lets one waiter through per event-loop iteration.

    With hundreds of streams, answers end (and new requests go out) in bursts: run all at once, a
    burst holds the loop for milliseconds. Through a turnstile each iteration does one such piece
    of work and then polls the sockets again.
    """

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._scheduled = False

    async def turn(self) -> None:
        """Wait for this waiter's turn: one waiter passes per event-loop iteration, in arrival order."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            fut.get_loop().call_soon(self._admit)
        await fut

    def _admit(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():  # a cancelled waiter gives its turn to the next one
                fut.set_result(None)
                break
        if self._waiters:
            asyncio.get_running_loop().call_soon(self._admit)  # runs in the next iteration
        else:
            self._scheduled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while a load runs (as timeit does): a full collection over the
    records of a thousand streams stops the loop for tens of milliseconds. Collected afterwards."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def bench_loop() -> asyncio.AbstractEventLoop:
    """The event loop the benchmark runs on: libuv's (uvloop) where installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
