"""What the checkpoint's config.json says about the model: MoE experts, MTP / draft heads, a vision part."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_CAP = 4 << 20  # a config.json is a few KiB; a bigger one is not read

EXPERT_KEYS = (
    "num_experts",
    "num_local_experts",
    "n_routed_experts",
    "moe_num_experts",
    "num_routed_experts",
)
MTP_KEYS = ("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_modules", "n_mtp_layers")
VISION_KEYS = (
    "vision_config",
    "vision_tower",
    "mm_vision_tower",
    "visual",
    "image_token_id",
    "image_token_index",
)
SUB_CONFIGS = ("text_config", "language_config", "llm_config")


@dataclass
class Checkpoint:
    """The parts of config.json the feature matrix decides from; `fields` are the keys that decided."""

    path: Path | None
    readable: bool = False
    problem: str = ""
    model_type: str | None = None
    architectures: list[str] = field(default_factory=list)
    experts: int | None = None
    expert_key: str | None = None
    mtp_layers: int | None = None
    mtp_key: str | None = None
    vision_key: str | None = None
    max_position_embeddings: int | None = None

    @property
    def is_moe(self) -> bool:
        """More than one routed expert."""
        return self.experts is not None and self.experts > 1

    @property
    def has_mtp(self) -> bool:
        """At least one MTP / next-n prediction layer in the checkpoint."""
        return self.mtp_layers is not None and self.mtp_layers > 0

    @property
    def has_vision(self) -> bool:
        """A vision encoder part (vision_config or an image token)."""
        return self.vision_key is not None


def read_checkpoint(folder: Path | None) -> Checkpoint:
    """Read `folder/config.json`; an unreadable or absent one gives `readable=False` and the reason."""
    if folder is None or not str(folder) or str(folder) == ".":
        return Checkpoint(path=None, problem="no checkpoint folder known")
    config = folder / "config.json"
    try:
        if config.stat().st_size > CONFIG_CAP:
            return Checkpoint(path=config, problem=f"{config} is larger than {CONFIG_CAP >> 20} MiB")
        data = json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Checkpoint(path=config, problem=f"no config.json at {folder}")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Checkpoint(path=config, problem=f"{config} unreadable: {type(exc).__name__}")
    if not isinstance(data, dict):
        return Checkpoint(path=config, problem=f"{config} is not a JSON object")
    return traits(data, config)


def traits(data: dict[str, Any], path: Path | None = None) -> Checkpoint:
    """The decisive keys of a parsed config.json (its text sub-config searched too)."""
    scopes = [("", data)] + [(f"{k}.", data[k]) for k in SUB_CONFIGS if isinstance(data.get(k), dict)]
    archs = data.get("architectures")
    cp = Checkpoint(
        path=path,
        readable=True,
        model_type=data.get("model_type") if isinstance(data.get("model_type"), str) else None,
        architectures=[a for a in archs if isinstance(a, str)] if isinstance(archs, list) else [],
    )
    for prefix, scope in scopes:
        for key in EXPERT_KEYS:
            value = _count(scope.get(key))
            if value is not None and cp.experts is None:
                cp.experts, cp.expert_key = value, prefix + key
        for key in MTP_KEYS:
            value = _count(scope.get(key))
            if value is not None and cp.mtp_layers is None:
                cp.mtp_layers, cp.mtp_key = value, prefix + key
        if cp.max_position_embeddings is None:
            cp.max_position_embeddings = _count(scope.get("max_position_embeddings"))
    for key in VISION_KEYS:
        if data.get(key) not in (None, {}, ""):
            cp.vision_key = key
            break
    return cp


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
