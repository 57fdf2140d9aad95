"""Per-request records to JSONL while the benchmark runs, in small batches off the hot path."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from stackcert.bench.records import RequestRecord
from stackcert.jsonio import dumps, open_private_append
from stackcert.secrets import scrub_text

FLUSH_EVERY_S = 0.25


class RecordWriter:
    """Buffers records and appends them every 250 ms (and at close): writing each one inline
    would block the event loop in the middle of other streams and skew their timestamps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: list[RequestRecord] = []
        self._task: asyncio.Task[None] | None = None
        self.count = 0

    def add(self, rec: RequestRecord) -> None:
        """Queue one record; the first one starts the periodic flush."""
        self._pending.append(rec)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            self.flush()

    def flush(self) -> None:
        """Append every queued record to the JSONL file now (secrets scrubbed)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        with open_private_append(self.path) as fh:
            for rec in batch:
                fh.write(scrub_text(dumps(rec.model_dump(mode="json"), indent=None)) + "\n")
            fh.flush()
        self.count += len(batch)

    async def close(self) -> None:
        """Stop the periodic flush and write what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()
