"""The docker target: a running container; commands through `docker exec -i`, files through `docker cp`.

A server in the container listens on the container's own address on its network (its bridge IP,
reachable from this host only through the docker bridge), or on 127.0.0.1 when the container shares
the host's network. Nothing is published on the host's other interfaces.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from stackcert.errors import UsageError
from stackcert.targets.base import Exposure, TargetInfo
from stackcert.targets.local import LOOPBACK, run_local
from stackcert.targets.remote import RemoteTarget

WHERE = "target.container"


class DockerTarget(RemoteTarget):
    """A running container on this machine's docker daemon."""

    @property
    def container(self) -> str:
        """The container's name or ID."""
        assert self.spec.container is not None
        return self.spec.container

    def _docker(self) -> str:
        found = shutil.which("docker")
        if found is None:
            raise UsageError(
                "the docker CLI is not installed",
                where="target.kind",
                fix="install docker (apt-get install docker.io)",
            )
        return found

    def client_argv(self, remote_argv: Sequence[str], forwards: Sequence[tuple[int, int]] = ()) -> list[str]:
        """`docker exec -i CONTAINER …` (forwards are not needed: the container's address is reachable)."""
        return [self._docker(), "exec", "-i", self.container, *remote_argv]

    @cached_property
    def _inspect(self) -> dict[str, Any]:
        done = run_local(
            [self._docker(), "inspect", "--type", "container", self.container],
            timeout=self.spec.connect_timeout_s,
        )
        if done.timed_out:
            raise UsageError(
                "the docker daemon did not answer", where=WHERE, fix="start dockerd, or check `docker ps`"
            )
        if not done.ok:
            msg = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "docker inspect failed"
            if "Cannot connect" in done.stderr:
                raise UsageError(
                    f"the docker daemon is not reachable: {msg}", where=WHERE, fix="start dockerd"
                )
            raise UsageError(
                f"docker container '{self.container}' not found",
                where=WHERE,
                fix="start it, or name a container of `docker ps`",
            )
        data = json.loads(done.stdout)
        return dict(data[0])

    def check(self) -> None:
        """The container exists, runs, and has the target Python."""
        state = self._inspect.get("State") or {}
        if not state.get("Running"):
            raise UsageError(
                f"docker container '{self.container}' is not running ({state.get('Status', 'unknown')})",
                where=WHERE,
                fix=f"docker start {self.container}",
            )
        done = self.run(
            [self.python, "-c", "import sys;print(sys.version.split()[0])"],
            timeout=self.spec.connect_timeout_s,
        )
        if not done.ok:
            raise UsageError(
                f"'{self.python}' does not run in container '{self.container}': "
                f"{done.stderr.strip()[-200:] or 'no output'}",
                where="target.python",
                fix="name the container's Python in target.python",
            )

    @cached_property
    def _bind_host(self) -> str:
        settings = self._inspect.get("HostConfig") or {}
        if settings.get("NetworkMode") == "host":
            return LOOPBACK
        networks = (self._inspect.get("NetworkSettings") or {}).get("Networks") or {}
        for net in networks.values():
            if net.get("IPAddress"):
                return str(net["IPAddress"])
        raise UsageError(
            f"docker container '{self.container}' has no IP address on any network",
            where=WHERE,
            fix="attach it to a network (docker network connect bridge NAME) or run it with --network host",
        )

    def expose(self, port: int) -> Exposure:
        """The server binds the container's address; stackcert connects to it directly."""
        return Exposure(self._bind_host, self._bind_host, port)

    def fetch(self, placed: Path, local: Path) -> None:
        """`docker cp CONTAINER:placed/. local` (a folder not there is no error)."""
        if not self.exists(placed):
            return
        local.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="sc-fetch-") as tmp:
            done = run_local(
                [self._docker(), "cp", f"{self.container}:{placed}/.", tmp],
                timeout=self.spec.connect_timeout_s * 4,
            )
            if not done.ok:
                tail = done.stderr.strip()[-300:]
                raise OSError(f"docker cp from {self.container}:{placed} failed: {tail}")
            shutil.copytree(tmp, local, dirs_exist_ok=True)

    def describe(self) -> TargetInfo:
        """Container name, image and network address."""
        config = self._inspect.get("Config") or {}
        return TargetInfo(
            kind="docker",
            name=self.container,
            python=self.python,
            bind_host=self._bind_host,
            detail={"image": str(config.get("Image", "")), "id": str(self._inspect.get("Id", ""))[:12]},
        )
