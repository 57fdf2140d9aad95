"""Atomic JSON files with the common envelope, and append-only JSONL records."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stackcert import SCHEMA_VERSION, __version__
from stackcert.secrets import redact, scrub_text

PRIVATE_DIR = 0o700  # run folders hold model output, logs and configs: the owner's only


def now_iso() -> str:
    """The current UTC time as ISO 8601, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def envelope(kind: str, payload: Mapping[str, Any], *, started: str | None = None) -> dict[str, Any]:
    """Wrap a payload with `schema_version`, the stackcert version, times and the command line."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "stackcert_version": __version__,
        "started": started or now_iso(),
        "finished": now_iso(),
        "command": sys.argv,
        **payload,
    }


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(data: Any, *, indent: int | None = 2) -> str:
    """JSON text for data; pydantic models, paths and sets are serialised too."""
    return json.dumps(data, indent=indent, default=_default, ensure_ascii=False)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) readable by the owner only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    path.chmod(PRIVATE_DIR)
    return path


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write then rename, so a reader never sees half a file and a crash never loses the old one.

    The file is created 0600, and every secret is redacted first (`stackcert.secrets.redact`).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    text = dumps(redact(json.loads(dumps(data, indent=None))))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        # (a lone surrogate from a server's text must not lose the whole file)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def append_jsonl(path: Path, record: Any) -> None:
    """Append one record and flush, so a crash keeps every record written before it."""
    with open_private_append(path) as fh:
        fh.write(scrub_text(dumps(record, indent=None)))
        fh.write("\n")
        fh.flush()


def open_private_append(path: Path) -> Any:
    """Open a text file for appending, created 0600 (secrets and model output stay the owner's)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")


def read_json(path: Path) -> Any:
    """The parsed contents of a JSON file (UTF-8)."""
    return json.loads(path.read_text(encoding="utf-8"))
