"""The environment of a run's target: probed in place, so a container or remote host reports itself."""

from __future__ import annotations

from stackcert.env.probe import HostInfo, probe_host
from stackcert.errors import EngineError
from stackcert.targets import Target

# Runs in the target's Python: stackcert must be importable there (same version as here).
_PROBE = "from stackcert.env.probe import probe_host; print(probe_host().model_dump_json())"


def probe_target(target: Target, *, timeout: float = 120.0) -> HostInfo:
    """The target's HostInfo (this host's for local); EngineError with a fix when it cannot be probed."""
    if not target.remote:
        return probe_host()
    done = target.run([target.python, "-c", _PROBE], timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.ok and lines:
        try:
            return HostInfo.model_validate_json(lines[-1])
        except ValueError:
            pass
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
    why = f"ran past {timeout:.0f}s" if done.timed_out else tail
    raise EngineError(
        f"could not probe the {target.kind} target with {target.python}: {why}",
        where=f"target ({target.describe().name})",
        fix="install stackcert in the target's Python (pip install stackcert) or set target.python",
    )
