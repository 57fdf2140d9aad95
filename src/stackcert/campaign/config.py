"""CampaignConfig: a matrix of (model × stack pair × target) certifications, each expanded to a RunConfig.

Loaded with `stackcert.yamlio` (unknown keys refused, errors name the key and the line). A pair is a
preset (`from_preset`), a run config file, or inline stacks; the campaign's and the pair's
`overrides` are merged into every run's config, which is validated as an ordinary RunConfig.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from stackcert.config import ModelSpec, StackSpec, Strict
from stackcert.errors import ConfigError, StackcertError
from stackcert.runmodel.config import RunConfig, TargetSpec, from_preset, load_run_config
from stackcert.yamlio import load_model_file


class RaySpec(Strict):
    """The embedded local Ray (ignored with --address: an existing cluster has its own sizes)."""

    num_cpus: int = Field(2, ge=1, description="CPUs the local Ray may hand out")
    object_store_mb: int = Field(200, ge=80, description="the local object store (results are small)")


class Resources(Strict):
    """What one run asks Ray for, and how long it may take."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per run; default: TP × PP of the two engine stacks that set TP, else 0"
    )
    timeout_s: float = Field(3600.0, gt=0, description="the whole run; it is interrupted past it")


class PairResources(Strict):
    """A pair's own resource requests (unset keys: the campaign's)."""

    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)
    timeout_s: float | None = Field(None, gt=0)


class PairSpec(Strict):
    """A reference and a candidate stack: from a preset, a run config file, or given inline."""

    preset: str | None = Field(None, description="a shipped preset (stacks, levels, phase sizes)")
    config: str | None = Field(None, description="a run config YAML (relative to the campaign file)")
    stacks: dict[str, StackSpec] = Field(default_factory=dict, description="added or replacing stacks")
    reference: str | None = None
    candidate: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict, description="merged into the run config")
    resources: PairResources = Field(default_factory=PairResources)

    @model_validator(mode="after")
    def _one_source(self) -> PairSpec:
        if self.preset and self.config:
            raise ValueError("give one of 'preset' or 'config', not both")
        if not (self.preset or self.config) and not (self.stacks and self.reference and self.candidate):
            raise ValueError("a pair needs 'preset', 'config', or 'stacks' with 'reference' and 'candidate'")
        return self


class EntryKey(Strict):
    """One cell of the matrix, named by its model, pair and target."""

    model: str
    pair: str
    target: str


class MatrixSpec(Strict):
    """Which models, pairs and targets are crossed (unset: all), less the excluded cells."""

    models: list[str] | None = None
    pairs: list[str] | None = None
    targets: list[str] | None = None
    exclude: list[EntryKey] = Field(default_factory=list)


class CampaignConfig(Strict):
    """A campaign: models, stack pairs and targets, crossed by the matrix; resources and Ray."""

    name: str = "campaign"
    output_dir: str = Field("campaigns", description="campaign folders are created under this")
    models: dict[str, ModelSpec] = Field(..., min_length=1)
    pairs: dict[str, PairSpec] = Field(..., min_length=1)
    targets: dict[str, TargetSpec] = Field(default_factory=lambda: {"local": TargetSpec()})
    matrix: MatrixSpec = Field(default_factory=MatrixSpec)
    overrides: dict[str, Any] = Field(default_factory=dict, description="merged into every run config")
    resources: Resources = Field(default_factory=Resources)
    ray: RaySpec = Field(default_factory=RaySpec)
    base_dir: str = Field("", description="set by the loader: the campaign file's folder")

    @model_validator(mode="after")
    def _names_exist(self) -> CampaignConfig:
        axes: dict[str, dict[str, Any]] = {
            "models": self.models,
            "pairs": self.pairs,
            "targets": self.targets,
        }
        for axis, table in axes.items():
            for name in getattr(self.matrix, axis) or []:
                if name not in table:
                    raise ValueError(f"matrix.{axis}: '{name}' is not one of {sorted(table)}")
        for key in self.matrix.exclude:
            for axis, name in (("models", key.model), ("pairs", key.pair), ("targets", key.target)):
                if name not in axes[axis]:
                    raise ValueError(
                        f"matrix.exclude: '{name}' is not one of the {axis} {sorted(axes[axis])}"
                    )
        return self


class Entry(BaseModel):
    """One run of the campaign: its cell, its RunConfig and what it asks Ray for."""

    id: str
    model: str
    pair: str
    target: str
    config: RunConfig
    num_cpus: float
    num_gpus: float
    timeout_s: float


def entry_id(model: str, pair: str, target: str) -> str:
    """The run folder name of a cell: model__pair__target, filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{model}__{pair}__{target}")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _pair_base(pair: PairSpec, base_dir: Path) -> dict[str, Any]:
    if pair.preset:
        return from_preset(pair.preset).model_dump(mode="json")
    if pair.config:
        path = Path(pair.config)
        return load_run_config(path if path.is_absolute() else base_dir / path).model_dump(mode="json")
    return {}


def gpus_of(config: RunConfig) -> float:
    """Default GPUs of a run: both servers are up at once, so TP × PP of each engine stack that sets TP."""
    stacks = (config.reference_stack(), config.candidate_stack())
    return float(sum(s.parallel_devices or 0 for s in stacks if s.engine == "vllm"))


def expand_entry(campaign: CampaignConfig, key: EntryKey) -> Entry:
    """One cell's RunConfig: the pair's base, its stacks and roles, the model and target, the overrides."""
    pair = campaign.pairs[key.pair]
    ident = entry_id(key.model, key.pair, key.target)
    where = f"pairs.{key.pair}"
    try:
        data = _pair_base(pair, Path(campaign.base_dir or "."))
        stacks = dict(data.get("stacks", {}))
        stacks.update(
            {name: s.model_dump(mode="json", exclude_unset=True) for name, s in pair.stacks.items()}
        )
        data.update(
            name=ident,
            stacks=stacks,
            model=campaign.models[key.model].model_dump(mode="json", exclude_unset=True),
            target=campaign.targets[key.target].model_dump(mode="json", exclude_unset=True),
        )
        for role in ("reference", "candidate"):
            if getattr(pair, role):
                data[role] = getattr(pair, role)
        data = deep_merge(deep_merge(data, campaign.overrides), pair.overrides)
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(
            f"run {ident}: {loc}: {first['msg']}", where=where, fix="check the pair and the overrides"
        ) from None
    except StackcertError as exc:
        raise ConfigError(f"run {ident}: {exc.what}", where=exc.where or where, fix=exc.fix) from None
    res = pair.resources
    return Entry(
        id=ident,
        model=key.model,
        pair=key.pair,
        target=key.target,
        config=config,
        num_cpus=res.num_cpus if res.num_cpus is not None else campaign.resources.num_cpus,
        num_gpus=res.num_gpus
        if res.num_gpus is not None
        else (campaign.resources.num_gpus if campaign.resources.num_gpus is not None else gpus_of(config)),
        timeout_s=res.timeout_s or campaign.resources.timeout_s,
    )


def cells(campaign: CampaignConfig) -> list[EntryKey]:
    """The matrix's cells in order (models, then pairs, then targets), less the excluded ones."""
    m = campaign.matrix
    excluded = {(k.model, k.pair, k.target) for k in m.exclude}
    return [
        EntryKey(model=a, pair=b, target=c)
        for a, b, c in itertools.product(
            m.models or list(campaign.models),
            m.pairs or list(campaign.pairs),
            m.targets or list(campaign.targets),
        )
        if (a, b, c) not in excluded
    ]


def expand(campaign: CampaignConfig) -> list[Entry]:
    """Every run of the campaign, validated; an empty matrix is an error."""
    entries = [expand_entry(campaign, key) for key in cells(campaign)]
    if not entries:
        raise ConfigError("the matrix has no run left", where="matrix", fix="exclude fewer cells")
    return entries


def load_campaign(path: Path) -> CampaignConfig:
    """A campaign file, validated; relative config paths are taken from its folder."""
    if not path.is_file():
        raise ConfigError(f"campaign file not found: {path}", where=str(path), fix="give a YAML file")
    campaign = load_model_file(path, CampaignConfig)
    return campaign.model_copy(update={"base_dir": str(path.resolve().parent)})
