"""One engine start per stack: the pool starts a stack's server on first use and keeps it up until
every phase that needs it (smoke, bench, consistency with the other stack) is done."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from stackcert.config import StackSpec
from stackcert.engines import launch_server
from stackcert.engines.base import ModelRef, Server, ServerTimeouts
from stackcert.pipeline.ledger import Ledger
from stackcert.progress import NullProgress, Progress
from stackcert.targets import LOCAL, Target


class ServerPool:
    """The running servers of a run, by stack name; every start is recorded in the ledger."""

    def __init__(
        self,
        ledger: Ledger | None,
        *,
        start_timeout_s: float,
        progress: Progress | None = None,
        target: Target = LOCAL,
    ) -> None:
        self.ledger = ledger
        self.target = target
        self.start_timeout_s = start_timeout_s
        self.progress = progress or NullProgress()
        self._exits: dict[str, contextlib.ExitStack] = {}
        self._servers: dict[str, Server] = {}
        self._lock = threading.Lock()

    def start(self, stack: StackSpec, model: ModelRef, folder: Path) -> Server:
        """Start the stack's server with its files in `folder` (recorded in the ledger when there is
        one: a command outside `stackcert run` has none); raises EngineError on failure."""
        self.stop(stack.name)
        exits = contextlib.ExitStack()
        start = self.ledger.engine_started(stack.name, None) if self.ledger is not None else None
        timeouts = ServerTimeouts(absolute=self.start_timeout_s)
        try:
            server: Server = exits.enter_context(
                launch_server(
                    stack,
                    model,
                    run_dir=folder,
                    progress=self.progress,
                    timeouts=timeouts,
                    target=self.target,
                )
            )
        except BaseException:
            exits.close()
            if start is not None and self.ledger is not None:
                start.ok = False
                self.ledger.save()
            raise
        if start is not None and self.ledger is not None:
            start.ok = True
            start.log_path = str(server.log_path) if server.log_path else None
            self.ledger.save()
        with self._lock:
            self._exits[stack.name] = exits
            self._servers[stack.name] = server
        return server

    def running(self, name: str) -> Server | None:
        """The stack's server if it is up."""
        server = self._servers.get(name)
        if server is not None and server.alive():
            return server
        return None

    def get(self, stack: StackSpec, model: ModelRef, folder: Path) -> Server:
        """The running server of the stack, started again if it is gone (a resume, or after a timeout)."""
        return self.running(stack.name) or self.start(stack, model, folder)

    def stop(self, name: str) -> None:
        """Stop one stack's server (no-op when it is not running)."""
        with self._lock:
            exits = self._exits.pop(name, None)
            self._servers.pop(name, None)
        if exits is not None:
            exits.close()

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        """Stop every server the pool started."""
        for name in list(self._exits):
            with contextlib.suppress(Exception):
                self.stop(name)
