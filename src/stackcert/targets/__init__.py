"""Targets: where a run's commands execute (this machine, a docker container, an ssh host).

Every process stackcert starts for a run — probes, the import gate, engines, offline workers — is
started through a :class:`Target` (docs/targets.md). Local runs commands as stackcert's children;
docker and ssh run them under a remote guard that stops the command's whole group when the
connection closes, so nothing survives stackcert there either.
"""

from __future__ import annotations

from stackcert.targets.base import Exposure, Launch, Output, Target, TargetInfo
from stackcert.targets.docker import DockerTarget
from stackcert.targets.local import LocalTarget
from stackcert.targets.remote import RemoteTarget
from stackcert.targets.spec import TargetSpec
from stackcert.targets.ssh import SshTarget

__all__ = [
    "DockerTarget",
    "Exposure",
    "Launch",
    "LocalTarget",
    "Output",
    "RemoteTarget",
    "SshTarget",
    "Target",
    "TargetInfo",
    "TargetSpec",
    "open_target",
]


def open_target(spec: TargetSpec | None = None) -> Target:
    """The target a spec names (local when none)."""
    spec = spec or TargetSpec()
    if spec.kind == "docker":
        return DockerTarget(spec)
    if spec.kind == "ssh":
        return SshTarget(spec)
    return LocalTarget(spec)


LOCAL: Target = LocalTarget(TargetSpec())
