"""A tiny FAKE checkpoint (a few bytes per file) with a real manifest, for tests that need no model."""

from __future__ import annotations

import json
from pathlib import Path

from stackcert.demo.manifest import Manifest, write_manifest


def make_checkpoint(folder: Path, *, manifest: bool = True, name: str = "gemma-3-270m") -> Manifest | None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["Gemma3ForCausalLM"]}))
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "tokenizer_config.json").write_text('{"bos_token": "<bos>"}')
    if not manifest:
        return None
    return write_manifest(folder, name=name, architectures=["Gemma3ForCausalLM"], bos_token_id=2)


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))
