"""The ssh target: `user@host[:port]`; commands through ssh, files through scp, servers through `-L`.

Host keys are always checked (`StrictHostKeyChecking=yes` against the known_hosts file); keys come
from the agent or `identity_file`; no password prompt (`BatchMode=yes`). A server listens on the
remote 127.0.0.1 and is reached through `-L` on the ssh connection that runs it, so the forward lives
exactly as long as the server.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from stackcert.errors import UsageError
from stackcert.targets.base import Exposure, TargetInfo
from stackcert.targets.local import LOOPBACK, local_free_port, run_local
from stackcert.targets.remote import RemoteTarget

WHERE = "target.host"


class SshTarget(RemoteTarget):
    """A host reached with OpenSSH."""

    def known_hosts(self) -> Path:
        """The known_hosts file the host key is checked against."""
        return (self.spec.known_hosts or Path("~/.ssh/known_hosts")).expanduser()

    def options(self) -> list[str]:
        """The options every ssh/scp call uses (no port: ssh and scp spell it differently)."""
        opts = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts()}",
            "-o", f"ConnectTimeout={max(1, int(self.spec.connect_timeout_s))}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip
        if self.spec.identity_file is not None:
            opts += ["-o", "IdentitiesOnly=yes", "-i", str(self.spec.identity_file.expanduser())]
        return opts

    def _login(self) -> tuple[list[str], str, int | None]:
        user, host, port = self.spec.ssh_parts()
        return (["-l", user] if user else []), host, port

    def client_argv(self, remote_argv: Sequence[str], forwards: Sequence[tuple[int, int]] = ()) -> list[str]:
        """`ssh -T [options] [-L …] host 'REMOTE ARGV'` (the remote shell gets one quoted command)."""
        user_args, host, port = self._login()
        argv = ["ssh", "-T", *self.options(), *user_args]
        if port:
            argv += ["-p", str(port)]
        if forwards:
            argv += ["-o", "ExitOnForwardFailure=yes"]
            for local_port, remote_port in forwards:
                argv += ["-L", f"{LOOPBACK}:{local_port}:{LOOPBACK}:{remote_port}"]
        return [*argv, "--", host, shlex.join(remote_argv)]

    def check(self) -> None:
        """ssh is installed, the key files exist, the host answers with a known key and runs the Python."""
        if shutil.which("ssh") is None:
            raise UsageError(
                "the ssh client is not installed", where="target.kind", fix="install openssh-client"
            )
        if not self.known_hosts().is_file():
            raise UsageError(
                f"known_hosts file not found: {self.known_hosts()}",
                where="target.known_hosts",
                fix="create it with the host's key (ssh-keyscan HOST, after checking its fingerprint)",
            )
        key = self.spec.identity_file
        if key is not None and not key.expanduser().is_file():
            raise UsageError(
                f"identity file not found: {key}",
                where="target.identity_file",
                fix="name an existing private key",
            )
        done = self.run(
            [self.python, "-c", "import sys;print(sys.version.split()[0])"],
            timeout=self.spec.connect_timeout_s + 5,
        )
        if done.ok:
            return
        err = done.stderr.strip()
        _, host, port = self._login()
        if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
            what, fix = (
                "host key not known or changed",
                (
                    f"check the fingerprint, then add it: ssh-keyscan {f'-p {port} ' if port else ''}{host}"
                    f" >> {self.known_hosts()}"
                ),
            )
        elif "Permission denied" in err:
            what, fix = (
                "login refused (key not accepted)",
                "load the key in ssh-agent or set target.identity_file",
            )
        elif done.timed_out or "timed out" in err or "Connection refused" in err or "resolve" in err:
            what, fix = (
                f"host not reachable ({err.splitlines()[-1] if err else 'timeout'})",
                "check host, port and network",
            )
        else:
            what, fix = (
                f"'{self.python}' does not run there: {err[-200:] or 'no output'}",
                "name the host's Python in target.python",
            )
        raise UsageError(f"ssh target {self.spec.host}: {what}", where=WHERE, fix=fix)

    def expose(self, port: int) -> Exposure:
        """The server binds the remote 127.0.0.1; stackcert connects to a local port forwarded to it."""
        if port == 0:
            return Exposure(LOOPBACK, LOOPBACK, 0)
        local = local_free_port()
        return Exposure(LOOPBACK, LOOPBACK, local, forwards=((local, port),))

    def fetch(self, placed: Path, local: Path) -> None:
        """`scp -r host:placed` into `local` (a folder not there is no error)."""
        if not self.exists(placed):
            return
        user_args, host, port = self._login()
        user = user_args[1] + "@" if user_args else ""
        local.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="sc-fetch-") as tmp:
            argv = [
                "scp",
                "-q",
                "-r",
                *self.options(),
                *(["-P", str(port)] if port else []),
                f"{user}{host}:{placed}",
                tmp,
            ]
            done = run_local(argv, timeout=self.spec.connect_timeout_s * 4)
            copied = Path(tmp) / placed.name
            if not done.ok or not copied.is_dir():
                raise OSError(f"scp from {self.spec.host}:{placed} failed: {done.stderr.strip()[-300:]}")
            shutil.copytree(copied, local, dirs_exist_ok=True)

    def describe(self) -> TargetInfo:
        """user@host:port and the known_hosts file used."""
        return TargetInfo(
            kind="ssh",
            name=self.spec.host or "",
            python=self.python,
            bind_host=LOOPBACK,
            detail={"known_hosts": str(self.known_hosts())},
        )
