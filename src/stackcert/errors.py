"""One error tree for the whole tool; the CLI catches it once and maps it to an exit code.

Every error carries *what* went wrong, *where* (file, key, line, URL ...) and *how to fix* it,
so the CLI can print one clear line instead of a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The CLI's exit codes: 0 pass, 1 fail, 2 bad input, 3 partial, 4 retest (only an inconclusive gate)."""

    PASS = 0
    FAIL = 1
    USAGE = 2
    PARTIAL = 3
    RETEST = 4


class StackcertError(Exception):
    """Base of every error stackcert raises on purpose."""

    exit_code: ExitCode = ExitCode.FAIL

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix

    def one_line(self) -> str:
        """The error as one line: what, (at where), — fix: how."""
        parts = [self.what]
        if self.where:
            parts.append(f"(at {self.where})")
        line = " ".join(parts)
        if self.fix:
            line += f" — fix: {self.fix}"
        return line

    def to_dict(self) -> dict[str, str | int | None]:
        """The error as a JSON-ready dict: class name, what, where, fix and exit code."""
        return {
            "error": type(self).__name__,
            "what": self.what,
            "where": self.where,
            "fix": self.fix,
            "exit_code": int(self.exit_code),
        }


class UsageError(StackcertError):
    """Bad input from the user: a flag, a name, a file. Exit code 2."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A config or preset file that does not validate."""


class ModelError(UsageError):
    """A model that is missing, corrupt or cannot be prepared."""


class EngineError(StackcertError):
    """An engine that could not start, crashed or stalled."""


class StepTimeout(StackcertError):
    """A step that ran past its time limit."""
