"""Progress as hooks, not imports: library code reports through this protocol; only the CLI knows rich."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def on_start(self, task: str, total: float | None = None) -> None: ...

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None: ...

    def on_message(self, task: str, message: str) -> None: ...

    def on_finish(self, task: str, status: str) -> None: ...


class NullProgress:
    """Reports nowhere; the default for library calls and tests."""

    def on_start(self, task: str, total: float | None = None) -> None:
        pass

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        pass

    def on_message(self, task: str, message: str) -> None:
        pass

    def on_finish(self, task: str, status: str) -> None:
        pass
