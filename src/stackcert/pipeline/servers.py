"""One engine start per stack: the pool starts a stack's server on first use and keeps it up until
every phase that needs it (smoke, bench, consistency with the other stack) is done."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, Server
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.libs import lib
from stackcert.progress import NullProgress, Progress


class ServerPool:
    def __init__(
        self, ledger: Ledger, run_dir: Path, *, start_timeout_s: float, progress: Progress | None = None
    ) -> None:
        self.ledger = ledger
        self.run_dir = run_dir
        self.start_timeout_s = start_timeout_s
        self.progress = progress or NullProgress()
        self._exits: dict[str, contextlib.ExitStack] = {}
        self._servers: dict[str, Server] = {}
        self._lock = threading.Lock()

    def _timeouts(self) -> Any:
        try:
            timeouts_cls = lib("stackcert.engines.base", "ServerTimeouts")
        except Exception:  # older engines module: let launch_server use its defaults
            return None
        return timeouts_cls(absolute=self.start_timeout_s)

    def start(self, stack: StackSpec, model: ModelRef) -> Server:
        """Start the stack's server (records the start in the ledger); raises EngineError on failure."""
        launch = lib("stackcert.engines", "launch_server")
        self.stop(stack.name)
        exits = contextlib.ExitStack()
        start = self.ledger.engine_started(stack.name, None)
        # Per-stack folder: server.log and server.json of two stacks must not collide.
        folder = self.run_dir / "stacks" / stack.name
        kwargs: dict[str, Any] = {"run_dir": folder, "progress": self.progress}
        timeouts = self._timeouts()
        if timeouts is not None:
            kwargs["timeouts"] = timeouts
        try:
            server: Server = exits.enter_context(launch(stack, model, **kwargs))
        except BaseException:
            exits.close()
            start.ok = False
            self.ledger.save()
            raise
        start.ok = True
        start.log_path = str(server.log_path) if server.log_path else None
        self.ledger.save()
        with self._lock:
            self._exits[stack.name] = exits
            self._servers[stack.name] = server
        return server

    def running(self, name: str) -> Server | None:
        server = self._servers.get(name)
        if server is not None and server.alive():
            return server
        return None

    def get(self, stack: StackSpec, model: ModelRef) -> Server:
        """The running server of the stack, started again if it is gone (a resume, or after a timeout)."""
        return self.running(stack.name) or self.start(stack, model)

    def stop(self, name: str) -> None:
        with self._lock:
            exits = self._exits.pop(name, None)
            self._servers.pop(name, None)
        if exits is not None:
            exits.close()

    def stop_all(self) -> None:
        for name in list(self._exits):
            with contextlib.suppress(Exception):
                self.stop(name)
