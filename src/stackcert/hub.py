"""Models by ID: a Hugging Face or ModelScope repository becomes a local snapshot folder.

The local cache is always tried first (`local_files_only=True`, no network). Only a miss downloads,
and the download runs in a supervised child process (`python -m stackcert.hub`) so its time limit
really stops it; both hubs resume a partial download on the next call. Offline (`HF_HUB_OFFLINE=1`)
with an empty cache gives one line saying how to fix it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from stackcert.errors import ModelError
from stackcert.paths import logs_dir

HubName = Literal["huggingface", "modelscope"]
DOWNLOAD_TIMEOUT_S = 600.0
_TRUE = {"1", "true", "yes", "on"}
_INSTALL = {
    "huggingface": "pip install 'stackcert[hub]' (or: pip install huggingface_hub)",
    "modelscope": "pip install 'stackcert[hub]' (or: pip install modelscope)",
}


class NotCached(Exception):
    """The snapshot is not (completely) in the local cache."""


def offline(hub: HubName) -> bool:
    """True when the hub's offline switch forbids any download."""
    names = ("HF_HUB_OFFLINE",) if hub == "huggingface" else ("MODELSCOPE_OFFLINE", "HF_HUB_OFFLINE")
    return any(os.environ.get(n, "").strip().lower() in _TRUE for n in names)


def _snapshot_download(hub: HubName) -> Any:
    """The hub library's snapshot_download, or a one-line error naming the package to install."""
    package = "huggingface_hub" if hub == "huggingface" else "modelscope"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ModelError(
            f"model.hub '{hub}' needs the {package} package, which is not installed",
            where="model.hub",
            fix=_INSTALL[hub],
        ) from None
    return module.snapshot_download


def snapshot(
    hub: HubName, model_id: str, *, revision: str | None, cache_dir: str | None, local_only: bool
) -> Path:
    """One call of the hub's snapshot_download; a cache miss (local_only) raises NotCached."""
    download = _snapshot_download(hub)
    kwargs: dict[str, Any] = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_only}
    if hub == "huggingface":
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        try:
            return Path(download(model_id, **kwargs))
        except HFValidationError as exc:
            raise ModelError(
                f"model.id '{model_id}' is not a Hugging Face repository ID: {str(exc).splitlines()[0]}",
                where="model.id",
                fix="give the ID as ORG/NAME, e.g. Qwen/Qwen3-0.6B",
            ) from None
        except LocalEntryNotFoundError as exc:
            if not local_only:
                raise
            raise NotCached(str(exc).splitlines()[0]) from None
    try:
        return Path(download(model_id, **kwargs))
    except Exception as exc:
        # ModelScope signals a cache miss with plain ValueError/FileNotFoundError, not a typed error.
        if local_only:
            raise NotCached(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        raise


def cache_location(hub: HubName, cache_dir: str | None) -> str:
    """Where the hub keeps its cache (for messages)."""
    if cache_dir:
        return cache_dir
    if hub == "huggingface":
        home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        return os.environ.get("HF_HUB_CACHE", str(Path(home) / "hub"))
    return os.environ.get("MODELSCOPE_CACHE", str(Path.home() / ".cache" / "modelscope" / "hub"))


def fetch_model(
    model_id: str,
    *,
    hub: HubName = "huggingface",
    revision: str | None = None,
    cache_dir: str | None = None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """The local snapshot folder of `model_id`: from the cache, else downloaded (resumable)."""
    try:
        return snapshot(hub, model_id, revision=revision, cache_dir=cache_dir, local_only=True)
    except NotCached:
        pass
    where = f"model.id {model_id} ({hub}, cache {cache_location(hub, cache_dir)})"
    if offline(hub):
        raise ModelError(
            f"model '{model_id}' is not in the local {hub} cache and offline mode forbids downloading",
            where=where,
            fix="unset HF_HUB_OFFLINE to download it, copy a filled cache into that folder, "
            "or use model.source: path",
        )
    _download(hub, model_id, revision=revision, cache_dir=cache_dir, timeout_s=timeout_s, where=where)
    try:
        return snapshot(hub, model_id, revision=revision, cache_dir=cache_dir, local_only=True)
    except NotCached as exc:
        raise ModelError(
            f"model '{model_id}' was downloaded but is not complete in the cache: {exc}",
            where=where,
            fix="run again (the download resumes)",
        ) from None


def download_argv(hub: HubName, model_id: str, *, revision: str | None, cache_dir: str | None) -> list[str]:
    """The child command that downloads one snapshot."""
    argv = [sys.executable, "-m", "stackcert.hub", hub, model_id]
    if revision:
        argv += ["--revision", revision]
    if cache_dir:
        argv += ["--cache-dir", cache_dir]
    return argv


def _download(
    hub: HubName, model_id: str, *, revision: str | None, cache_dir: str | None, timeout_s: float, where: str
) -> None:
    # Imported here: engines pulls in the process supervision, which a cache hit never needs.
    from stackcert.engines.process import run_command

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log = logs_dir() / f"download-{model_id.replace('/', '--')}-{stamp}-{os.getpid()}.log"
    argv = download_argv(hub, model_id, revision=revision, cache_dir=cache_dir)
    done = run_command(argv, timeout=timeout_s, log_path=log)
    if done.timed_out:
        raise ModelError(
            f"downloading '{model_id}' from {hub} ran past {timeout_s:.0f}s",
            where=str(log),
            fix="run again: the download resumes where it stopped (or check the network / HF_ENDPOINT)",
        )
    if done.returncode != 0:
        raise ModelError(
            f"could not download '{model_id}' from {hub}: {_last_line(log)}",
            where=where,
            fix="check the ID, the revision and the network (HF_ENDPOINT for a mirror, HF_TOKEN for a "
            "gated model), or set HF_HUB_OFFLINE=1 with a filled cache, or use model.source: path",
        )


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][-300:] if lines else "no output"


def main(argv: list[str] | None = None) -> int:
    """Child entry point: download one snapshot, print its folder; errors as one last line."""
    parser = argparse.ArgumentParser(prog="python -m stackcert.hub")
    parser.add_argument("hub", choices=["huggingface", "modelscope"])
    parser.add_argument("model_id")
    parser.add_argument("--revision")
    parser.add_argument("--cache-dir")
    args = parser.parse_args(argv)
    try:
        path = snapshot(
            args.hub, args.model_id, revision=args.revision, cache_dir=args.cache_dir, local_only=False
        )
    except ModelError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 2
    except Exception as exc:  # the parent reads the last line of the log as the reason
        print(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
