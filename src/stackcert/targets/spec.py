"""TargetSpec: where a run's commands execute — this machine, a running container or an ssh host."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from stackcert.config import Strict

_SSH_HOST = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>\d+))?$"
)


class TargetSpec(Strict):
    """The `target:` block of a run config (docs/targets.md)."""

    kind: Literal["local", "docker", "ssh"] = "local"
    container: str | None = Field(None, description="docker: name or ID of a running container")
    host: str | None = Field(None, description="ssh: user@host[:port]")
    identity_file: Path | None = Field(None, description="ssh: private key file (default: the ssh agent)")
    known_hosts: Path | None = Field(
        None, description="ssh: known_hosts file the host key is checked against (default ~/.ssh/known_hosts)"
    )
    python: str | None = Field(
        None,
        description="the target's Python that runs engines and probes (local: stackcert's; else python3)",
    )
    workdir: str = Field("/tmp/stackcert", description="docker/ssh: scratch folder for files engines write")
    connect_timeout_s: float = Field(15.0, gt=0, description="docker/ssh: limit for one connection or copy")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> TargetSpec:
        if self.kind == "docker" and not self.container:
            raise ValueError("target.kind docker needs target.container (the running container's name)")
        if self.kind == "ssh":
            if not self.host:
                raise ValueError("target.kind ssh needs target.host (user@host[:port])")
            if _SSH_HOST.match(self.host) is None:
                raise ValueError(f"target.host {self.host!r} is not user@host[:port]")
        if not self.workdir.startswith("/"):
            raise ValueError(f"target.workdir {self.workdir!r} must be an absolute path")
        return self

    def ssh_parts(self) -> tuple[str | None, str, int | None]:
        """(user, host, port) of an ssh target's `host`."""
        m = _SSH_HOST.match(self.host or "")
        if m is None:
            raise ValueError(f"target.host {self.host!r} is not user@host[:port]")
        port = m.group("port")
        return m.group("user"), m.group("host").strip("[]"), int(port) if port else None
