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


def now_iso() -> str:
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
    return json.dumps(data, indent=indent, default=_default, ensure_ascii=False)


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write then rename, so a reader never sees half a file and a crash never loses the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps(data))
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
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(dumps(record, indent=None))
        fh.write("\n")
        fh.flush()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
