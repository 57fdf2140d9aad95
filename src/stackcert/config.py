"""Typed configuration: the model, the stacks, presets. YAML in, pydantic models out."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stackcert.errors import ConfigError, UsageError
from stackcert.yamlio import load_model_file

T = TypeVar("T")
EngineName = Literal["vllm", "transformers", "endpoint"]


class Strict(BaseModel):
    """A config model that refuses unknown keys, so a typo fails at load time instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class OperatorSelection(Strict):
    """Which operators of an operator library (FlagGems, or the test fault library) are replaced."""

    library: Literal["flag_gems", "fault_ops"] = "flag_gems"
    via: Literal["stackcert", "vllm_fl"] = Field(
        "stackcert",
        description="vLLM engine: who applies it in the engine processes — stackcert's vLLM plugin, "
        "or vllm-plugin-FL's own switches (VLLM_FL_FLAGOS_WHITELIST / _BLACKLIST)",
    )
    include: list[str] | None = Field(None, description="only these operators; None = all the library has")
    exclude: list[str] = Field(default_factory=list)
    faults: dict[str, str] = Field(
        default_factory=dict,
        description="fault_ops only (a test fixture): operator -> crash | nan | drift | drift:M",
    )


# engine_args each engine honours; None = passed through to the engine, which checks them itself.
ENGINE_ARGS: dict[str, frozenset[str] | None] = {
    "vllm": None,
    "transformers": frozenset({"dtype", "max_model_len", "port", "attn_implementation", "batch_size"}),
    "endpoint": frozenset(),
}


PARALLEL_KEYS = ("tensor_parallel_size", "pipeline_parallel_size")


class StackSpec(Strict):
    """A named way to run the same model."""

    name: str
    engine: EngineName = "vllm"
    description: str = ""
    env: dict[str, str] = Field(default_factory=dict, description="variables to set")
    unset_env: list[str] = Field(default_factory=list, description="variables to remove")
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="engine options, snake_case (vLLM: LLM kwargs / server flags)"
    )
    operators: OperatorSelection | None = None
    url: str | None = Field(None, description="endpoint engine: base URL of a running server")
    api_key_env: str | None = Field(None, description="endpoint engine: name of the variable holding the key")
    components: list[str] = Field(
        default_factory=list, description="the replacement components this stack turns on (for diagnosis)"
    )
    tensor_parallel_size: int | None = Field(
        None,
        ge=1,
        description="vLLM: devices per pipeline stage; default: the devices the host has (1 on CPU)",
    )
    pipeline_parallel_size: int | None = Field(None, ge=1, description="vLLM: pipeline stages; default 1")

    @model_validator(mode="after")
    def _endpoint_needs_url(self) -> StackSpec:
        if self.engine == "endpoint" and not self.url:
            raise ValueError("an endpoint stack needs 'url'")
        return self

    @model_validator(mode="after")
    def _engine_args_honoured(self) -> StackSpec:
        # A key the engine would silently ignore makes the stack run as something else, and every
        # verdict on it meaningless: refuse it by name. vLLM's keys go to vLLM, whose own parser
        # refuses unknown ones.
        accepted = ENGINE_ARGS.get(self.engine)
        if accepted is None:
            return self
        unknown = sorted(set(self.engine_args) - accepted)
        if unknown:
            takes = ", ".join(sorted(accepted)) or "none"
            raise ValueError(
                f"engine_args {', '.join(unknown)} not supported by the {self.engine} engine "
                f"(it accepts: {takes})"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _parallel_from_engine_args(cls, data: Any) -> Any:
        # One place for the parallel sizes: the stack's fields. A vLLM stack (or an earlier run's
        # config.json / report.json) that has them in engine_args gets them moved there.
        if not isinstance(data, dict) or data.get("engine", "vllm") != "vllm":
            return data
        args = data.get("engine_args")
        if not isinstance(args, dict) or not any(key in args for key in PARALLEL_KEYS):
            return data
        data, args = dict(data), dict(args)
        for key in PARALLEL_KEYS:
            if key in args:
                value = args.pop(key)
                if data.get(key) not in (None, value):
                    raise ValueError(f"{key} is set twice, on the stack and in engine_args")
                data[key] = value
        data["engine_args"] = args
        return data

    @model_validator(mode="after")
    def _parallel_on_vllm_only(self) -> StackSpec:
        for key in PARALLEL_KEYS:
            if getattr(self, key) not in (None, 1) and self.engine != "vllm":
                raise ValueError(f"{key} needs the vllm engine (the {self.engine} engine runs on one device)")
        return self

    @property
    def parallel_devices(self) -> int | None:
        """TP × PP when TP is set; None while TP is left to the host's device count."""
        if self.tensor_parallel_size is None:
            return None
        return self.tensor_parallel_size * (self.pipeline_parallel_size or 1)

    def launch_args(self) -> dict[str, Any]:
        """engine_args with the parallel sizes that are set, as the engine receives them."""
        args = dict(self.engine_args)
        for key in PARALLEL_KEYS:
            if getattr(self, key) is not None:
                args[key] = getattr(self, key)
        return args

    def child_env(self, base: dict[str, str]) -> dict[str, str]:
        """The environment a child process of this stack runs with."""
        env = {k: v for k, v in base.items() if k not in set(self.unset_env)}
        env.update(self.env)
        return env


class ModelSpec(Strict):
    """Which model to certify: the embedded demo, a checkpoint folder, or a hub repository by ID."""

    source: Literal["demo", "path", "hub"] = "demo"
    path: str | None = Field(None, description="HF checkpoint folder (source: path)")
    id: str | None = Field(None, description="hub repository ID, e.g. Qwen/Qwen3-0.6B (source: hub)")
    hub: Literal["huggingface", "modelscope"] = "huggingface"
    revision: str | None = Field(None, description="hub branch, tag or commit (default: the main branch)")
    cache_dir: str | None = Field(None, description="hub cache folder (default: the hub library's own)")
    served_name: str | None = None
    dtype: str = "bfloat16"
    max_model_len: int = 2048
    trust_remote_code: bool = False
    chat_template: str | None = Field(None, description="a Jinja chat template file, for models without one")

    @model_validator(mode="after")
    def _path_needed(self) -> ModelSpec:
        if self.source == "path" and not self.path:
            raise ValueError("model.source 'path' needs model.path")
        if self.source == "hub" and not self.id:
            raise ValueError("model.source 'hub' needs model.id (e.g. Qwen/Qwen3-0.6B)")
        if self.source != "hub" and (self.id or self.revision):
            raise ValueError("model.id and model.revision need model.source: hub")
        return self


class Preset(Strict):
    """Stacks of one model: which is the reference, which the candidate, and the isolation levels."""

    name: str
    description: str = ""
    model: ModelSpec = Field(default_factory=ModelSpec)
    stacks: dict[str, StackSpec]
    reference: str
    candidate: str
    levels: list[str] = Field(default_factory=list, description="isolation levels, one component at a time")

    @model_validator(mode="after")
    def _names_exist(self) -> Preset:
        for role in ("reference", "candidate"):
            name = getattr(self, role)
            if name not in self.stacks:
                raise ValueError(f"{role} '{name}' is not one of the stacks {sorted(self.stacks)}")
        for level in self.levels:
            if level not in self.stacks:
                raise ValueError(f"level '{level}' is not one of the stacks {sorted(self.stacks)}")
        return self

    def stack(self, name: str) -> StackSpec:
        """The stack of that name; an unknown name fails with a 'did you mean' hint."""
        return pick(name, self.stacks, what="stack", where=f"preset {self.name}")


def pick(name: str, table: dict[str, T], *, what: str, where: str) -> T:
    """Look a name up; a miss answers 'did you mean ...?'."""
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(sorted(table))}"
    raise UsageError(f"unknown {what} '{name}'", where=where, fix=hint)


def preset_names() -> list[str]:
    """The names of the presets shipped with stackcert, sorted."""
    folder = resources.files("stackcert") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> Preset:
    """A shipped preset by name, validated; an unknown name fails with a 'did you mean' hint."""
    names = {n: n for n in preset_names()}
    pick(name, names, what="preset", where="--preset")
    with resources.as_file(resources.files("stackcert") / "presets" / f"{name}.yaml") as path:
        return load_model_file(Path(path), Preset)


def load_preset_file(path: Path) -> Preset:
    """A preset from a YAML file, validated; errors name the key and the line."""
    if not path.exists():
        raise ConfigError(f"preset file not found: {path}", where=str(path), fix="check the path")
    return load_model_file(path, Preset)


ROLES = ("reference", "candidate")


def resolve_stack(name_or_file: str, preset: str = "demo") -> StackSpec:
    """`NAME` from the preset, a role of the preset (`reference`, `candidate`), or a stack YAML file."""
    candidate = Path(name_or_file)
    if name_or_file.endswith((".yaml", ".yml")):
        if not candidate.exists():
            raise ConfigError(f"stack file not found: {candidate}", fix="check the path")
        return load_model_file(candidate, StackSpec)
    loaded = load_preset(preset)
    if name_or_file in ROLES and name_or_file not in loaded.stacks:
        return loaded.stack(getattr(loaded, name_or_file))
    return loaded.stack(name_or_file)
