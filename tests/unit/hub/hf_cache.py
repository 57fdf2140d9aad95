"""Build a Hugging Face hub cache in a temp folder, in the layout huggingface_hub itself reads.

`models--ORG--NAME/{blobs,refs,snapshots}`: each snapshot file is a relative symlink to its blob,
and `refs/<revision>` holds the commit. The tests check the result with `scan_cache_dir`, so a
layout huggingface_hub would not recognise fails there instead of passing silently.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

TINY_FILES: dict[str, bytes] = {
    "config.json": json.dumps({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}).encode(),
    "model.safetensors": bytes(range(256)) * 16,
    "tokenizer.json": b'{"version": "1.0"}',
    "tokenizer_config.json": b'{"chat_template": "{{ messages }}"}',
}


def add_snapshot(
    cache: Path, repo_id: str, files: dict[str, bytes], *, revision: str = "main", commit: str | None = None
) -> Path:
    """Add one snapshot of `repo_id` (files → blobs + symlinks) and point `refs/revision` at it."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = commit or hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../..") / "blobs" / blob)
    (repo / "refs" / revision).write_text(commit)
    return snap
