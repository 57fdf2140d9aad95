"""Model resolution: a `ModelSpec` from a config or preset becomes files on disk (`ModelRef`).

`source: demo` prepares (or reuses) the embedded Gemma-3-270M; `source: path` checks that a
Hugging Face checkpoint folder is complete enough to serve: config.json, weights, tokenizer;
`source: hub` takes the snapshot of `model.id` from the local hub cache, or downloads it
(`stackcert.hub`), then checks it the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stackcert.config import ModelSpec
from stackcert.demo.convert import has_chat_template
from stackcert.demo.manifest import read_manifest, verify_folder
from stackcert.engines.base import ModelRef
from stackcert.errors import ModelError
from stackcert.progress import Progress

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.pt", "*.gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_PATH_FIX = "point model.path at a Hugging Face checkpoint folder (config.json, weights, tokenizer)"


def resolve_model(spec: ModelSpec, *, progress: Progress | None = None) -> ModelRef:
    """Turn a model spec into a checked checkpoint folder.

    `has_chat_template` is true when the checkpoint carries its own template or the spec gives a
    template file; `chat_template` is that file (None when the checkpoint's own is used).
    """
    template = _template_file(spec)
    if spec.source == "demo":
        from stackcert.demo.model import prepare_demo

        prepared = prepare_demo(progress=progress)
        folder, default_name = prepared.path, prepared.served_name
        own_template = prepared.manifest.has_chat_template
    elif spec.source == "hub":
        from stackcert.hub import fetch_model

        snapshot = fetch_model(spec.id or "", hub=spec.hub, revision=spec.revision, cache_dir=spec.cache_dir)
        folder = check_checkpoint(snapshot, where=f"model.id {spec.id}")
        # The ID, as vLLM would announce a model given by ID (the snapshot folder is a commit hash).
        default_name = spec.id or folder.name
        own_template = has_chat_template(folder)
    else:
        folder = check_checkpoint(Path(spec.path or ""))
        default_name = folder.name
        own_template = has_chat_template(folder)
    return ModelRef(
        path=folder,
        served_name=spec.served_name or default_name,
        tokenizer=folder,
        dtype=spec.dtype,
        max_model_len=spec.max_model_len,
        trust_remote_code=spec.trust_remote_code,
        chat_template=template,
        has_chat_template=own_template or template is not None,
    )


def _template_file(spec: ModelSpec) -> Path | None:
    if not spec.chat_template:
        return None
    path = Path(spec.chat_template).expanduser().resolve()
    if not path.is_file():
        raise ModelError(
            f"chat template file not found: {spec.chat_template}",
            where="model.chat_template",
            fix="give the path of a Jinja chat template file, or drop model.chat_template",
        )
    return path


def check_checkpoint(path: Path, *, where: str = "model.path") -> Path:
    """The resolved folder when it looks like a servable HF checkpoint; a ModelError otherwise."""
    folder = path.expanduser().resolve()
    if not folder.exists():
        raise ModelError(f"model folder not found: {folder}", where=where, fix=_PATH_FIX)
    if not folder.is_dir():
        raise ModelError(f"model path is not a folder: {folder}", where=where, fix=_PATH_FIX)
    config = folder / "config.json"
    if not config.is_file():
        raise ModelError(f"model folder has no config.json: {folder}", where=where, fix=_PATH_FIX)
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"config.json is not valid JSON: {exc}", where=str(config), fix=_PATH_FIX) from exc
    if not any(next(folder.glob(p), None) for p in WEIGHT_PATTERNS):
        raise ModelError(
            f"model folder has no weights (*.safetensors, pytorch_model*.bin): {folder}",
            where=where,
            fix=_PATH_FIX,
        )
    _check_shards(folder)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(
            f"model folder has no tokenizer ({', '.join(TOKENIZER_FILES)}): {folder}",
            where=where,
            fix="save the tokenizer into the checkpoint folder (tokenizer.save_pretrained)",
        )
    return folder


def _check_shards(folder: Path) -> None:
    """Every shard a weight index names must exist (a half-copied checkpoint fails here, not in vLLM)."""
    for name in INDEX_FILES:
        index = folder / name
        if not index.is_file():
            continue
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        except ValueError as exc:
            raise ModelError(f"{name} is not valid JSON: {exc}", where=str(index), fix=_PATH_FIX) from exc
        for shard in sorted(set(weight_map.values())):
            if not (folder / shard).is_file():
                raise ModelError(
                    f"weight shard missing: {shard}", where=str(index), fix="copy the complete checkpoint"
                )


def describe_path(path: Path, *, verify: bool = False, where: str = "model.path") -> dict[str, Any]:
    """What `stackcert model info PATH` shows: config summary, files, chat template, manifest."""
    folder = check_checkpoint(path, where=where)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config") or {}
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    info: dict[str, Any] = {
        "path": folder,
        "served_name": folder.name,
        "architectures": config.get("architectures") or [],
        "model_type": config.get("model_type"),
        "dtype": config.get("torch_dtype") or config.get("dtype"),
        "vocab_size": config.get("vocab_size") or text.get("vocab_size"),
        "max_position_embeddings": config.get("max_position_embeddings")
        or text.get("max_position_embeddings"),
        "has_chat_template": has_chat_template(folder),
        "files": [{"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size} for p in files],
        "total_bytes": sum(p.stat().st_size for p in files),
        "verified": None,
    }
    manifest = read_manifest(folder, fix="re-copy or re-prepare the model")
    if manifest is not None:
        verify_folder(folder, manifest, full=verify, fix="re-copy or re-prepare the model")
        info["verified"] = "sha256" if verify else "sizes"
        info["manifest"] = manifest
    return info
