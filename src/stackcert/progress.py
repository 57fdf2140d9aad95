"""Progress as hooks, not imports: library code reports through this protocol; only the CLI knows rich."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Where long library work reports its progress: a task starts, advances, says something, and ends."""

    def on_start(self, task: str, total: float | None = None) -> None:
        """A task begins; total is its expected amount of work when known."""

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        """A task moved forward by advance units, with optional live metrics (e.g. tokens/s)."""

    def on_message(self, task: str, message: str) -> None:
        """A task has a line of news to show."""

    def on_finish(self, task: str, status: str) -> None:
        """A task ended with the given status."""


class NullProgress:
    """Reports nowhere; the default for library calls and tests."""

    def on_start(self, task: str, total: float | None = None) -> None:
        """Ignores the start of a task."""
        pass

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        """Ignores a task's progress."""
        pass

    def on_message(self, task: str, message: str) -> None:
        """Ignores a task's message."""
        pass

    def on_finish(self, task: str, status: str) -> None:
        """Ignores the end of a task."""
        pass
