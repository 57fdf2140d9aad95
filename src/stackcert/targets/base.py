"""The one interface every command of a run goes through: run, spawn, copy files, expose a port."""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from stackcert.targets.spec import TargetSpec


class TargetInfo(BaseModel):
    """What the report says about where the run executed."""

    kind: str
    name: str = Field(description="the container, user@host:port, or 'this machine'")
    python: str
    bind_host: str = Field(description="the address servers listen on inside the target")
    detail: dict[str, str] = Field(default_factory=dict, description="image, host key type, OS ...")


@dataclass(frozen=True)
class Exposure:
    """How a server port inside the target is reached from stackcert."""

    bind_host: str  # what the engine listens on, inside the target
    url_host: str  # what stackcert connects to
    url_port: int
    forwards: tuple[tuple[int, int], ...] = ()  # (local port, target port) the spawn must forward

    @property
    def base_url(self) -> str:
        """http://host:port of the server, as stackcert reaches it."""
        return f"http://{self.url_host}:{self.url_port}"


@dataclass(frozen=True)
class Launch:
    """A local argv that runs a command in the target, and what to write to its stdin first."""

    argv: list[str]
    stdin_header: bytes | None = None  # remote guards read the command and env from here


@dataclass(frozen=True)
class Output:
    """A finished command: exit code (None when killed at the limit), stdout and stderr text."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """Exit code 0 within the limit."""
        return self.returncode == 0 and not self.timed_out


class Target(abc.ABC):
    """Where a run's commands execute. Local runs them here; docker and ssh through a remote guard."""

    def __init__(self, spec: TargetSpec) -> None:
        self.spec = spec

    @property
    def kind(self) -> str:
        """local, docker or ssh."""
        return self.spec.kind

    @property
    def remote(self) -> bool:
        """Whether commands run somewhere else than this process's machine and filesystem."""
        return self.kind != "local"

    @property
    @abc.abstractmethod
    def python(self) -> str:
        """The target's Python: engines, offline workers and probes run with it."""

    def base_env(self) -> dict[str, str]:
        """The environment a child's variables are set on: this process's here, empty on a remote
        target (whose own environment applies there)."""
        return dict(os.environ)

    @abc.abstractmethod
    def run(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Output:
        """Run a short command there to completion and capture its output (never raises for its failure)."""

    @abc.abstractmethod
    def expose(self, port: int) -> Exposure:
        """How a server started there on `port` is reached, and what it must bind."""

    @abc.abstractmethod
    def free_port(self) -> int:
        """A port free right now in the target."""

    @abc.abstractmethod
    def place(self, local: Path) -> Path:
        """The folder in the target that stands for the local run folder `local`: `local` itself here,
        a fresh empty folder on a remote target (fetch copies it back)."""

    @abc.abstractmethod
    def fetch(self, placed: Path, local: Path) -> None:
        """Copy the target folder `placed` (from `place`) back into `local`; missing is no error, a failed
        copy raises OSError."""

    @abc.abstractmethod
    def exists(self, path: Path) -> bool:
        """Whether a file or folder exists in the target."""

    @abc.abstractmethod
    def describe(self) -> TargetInfo:
        """Kind, name, Python and bind address for the report."""

    def check(self) -> None:  # noqa: B027 - an optional hook: local needs no check
        """Raise UsageError (one line: what, where, fix) when the target cannot be used."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release what the target holds (nothing by default)."""
