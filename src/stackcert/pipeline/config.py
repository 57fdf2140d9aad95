"""RunConfig: everything `stackcert run` needs — model, target, stacks, phases, gates, output.

Loaded from YAML with `stackcert.yamlio.load_model_file` (unknown keys are refused and every error
names the key and the line), or built from a preset with `from_preset`. Every key is documented
in docs/config.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from stackcert.config import ModelSpec, StackSpec, Strict, load_preset
from stackcert.errors import ConfigError, UsageError
from stackcert.yamlio import load_model_file, load_yaml, validation_error


class TargetSpec(Strict):
    """Where the commands run. Only `local` works today; the others are declared so configs can name them."""

    kind: Literal["local", "docker", "ssh"] = "local"
    container: str | None = Field(None, description="docker: the container name")
    host: str | None = Field(None, description="ssh: user@host")

    def require_supported(self) -> None:
        if self.kind != "local":
            raise UsageError(
                f"target kind '{self.kind}' is not supported yet",
                where="target.kind",
                fix="use 'target: {kind: local}' and run stackcert on the machine itself",
            )


class PhaseSpec(Strict):
    enabled: bool = True
    timeout_s: float = Field(600.0, gt=0, description="hard limit for the step")
    options: dict[str, Any] = Field(
        default_factory=dict, description="passed to the phase library's options model (its own keys)"
    )


class BenchPhase(PhaseSpec):
    profiles: list[str] = Field(default_factory=lambda: ["demo"], description="bench profile names")


class BisectPhase(PhaseSpec):
    timeout_per_probe_s: float = Field(300.0, gt=0)


class PhasesSpec(Strict):
    # The offline smoke phase would start the engine a second time: off unless asked for.
    smoke: PhaseSpec = Field(default_factory=lambda: PhaseSpec(timeout_s=300, options={"offline": False}))
    consistency: PhaseSpec = Field(default_factory=lambda: PhaseSpec(timeout_s=600))
    bench: BenchPhase = Field(default_factory=BenchPhase)
    bisect: BisectPhase = Field(default_factory=lambda: BisectPhase(timeout_s=1800))


class TimeoutsSpec(Strict):
    """Limits, in seconds, of the steps that are not phases."""

    env: float = Field(120.0, gt=0)
    install: float = Field(300.0, gt=0)
    model: float = Field(900.0, gt=0)
    engine_start: float = Field(600.0, gt=0)
    compare: float = Field(120.0, gt=0)
    report: float = Field(120.0, gt=0)


class GatesSpec(Strict):
    perf_ratio: float = Field(0.8, gt=0, description="candidate/reference throughput must reach this")
    consistency: dict[str, float] = Field(
        default_factory=dict,
        description="tolerance settings of the consistency gate (ToleranceSettings keys)",
    )
    require_consistency: bool = Field(True, description="a candidate must pass consistency to PASS")
    require_bench: bool = Field(True, description="a candidate must meet perf_ratio to PASS")


class RunConfig(Strict):
    name: str = "run"
    model: ModelSpec
    target: TargetSpec = Field(default_factory=TargetSpec)
    stacks: dict[str, StackSpec]
    reference: str
    candidate: str
    phases: PhasesSpec = Field(default_factory=PhasesSpec)
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    output_dir: str = Field("runs", description="runs are created under this folder")
    levels: list[str] = Field(
        default_factory=list,
        description="isolation ladder from the reference to the candidate, one switch per level",
    )

    @model_validator(mode="after")
    def _roles_exist(self) -> RunConfig:
        for role in ("reference", "candidate"):
            name = getattr(self, role)
            if name not in self.stacks:
                raise ValueError(f"{role} '{name}' is not one of the stacks {sorted(self.stacks)}")
        if self.reference == self.candidate:
            raise ValueError("reference and candidate must be two different stacks")
        for level in self.levels:
            if level not in self.stacks:
                raise ValueError(f"level '{level}' is not one of the stacks {sorted(self.stacks)}")
        return self

    def reference_stack(self) -> StackSpec:
        return self.stacks[self.reference]

    def candidate_stack(self) -> StackSpec:
        return self.stacks[self.candidate]


# Phase sizes of the demo preset, chosen so the whole demo fits in 15 minutes on 2 CPU cores.
DEMO_PHASES: dict[str, Any] = {
    "smoke": {"timeout_s": 300, "options": {"offline": False}},
    "consistency": {
        "timeout_s": 900,
        # 16 greedy prompts × 32 tokens; 4 ShareGPT texts of 128 tokens scored (up to 16 while a check
        # is inconclusive); number_sequence from 100 items up to 400 while the accuracy gate cannot
        # decide (identical answers at ~85 % accuracy decide at about 100).
        "options": {
            "tokens": {"max_tokens": 32},
            "sharegpt_texts": 4,
            "max_sharegpt_texts": 16,
            "token_budget": 128,
            "tasks": ["number_sequence"],
            "task_limit": 100,
            "task_budget": 400,
        },
    },
    "bench": {"timeout_s": 600, "profiles": ["demo"]},
    "bisect": {"enabled": True, "timeout_s": 900},
}


def from_preset(name: str, *, output_dir: str = "runs") -> RunConfig:
    """The RunConfig of a preset: its model and stacks, plus the demo phase sizes and default gates."""
    preset = load_preset(name)
    stacks = {k: _low_memory(v) for k, v in preset.stacks.items()}
    return RunConfig(
        name=preset.name,
        model=preset.model,
        stacks=stacks,
        reference=preset.reference,
        candidate=preset.candidate,
        phases=PhasesSpec.model_validate(DEMO_PHASES),
        output_dir=output_dir,
        levels=preset.levels,
    )


def _low_memory(stack: StackSpec) -> StackSpec:
    """vLLM-CPU checks NUMA node 0 only; two servers must fit there side by side."""
    if stack.engine != "vllm" or "gpu_memory_utilization" in stack.engine_args:
        return stack
    return stack.model_copy(update={"engine_args": {**stack.engine_args, "gpu_memory_utilization": 0.3}})


def load_run_config(path: Path) -> RunConfig:
    """A RunConfig from YAML, every phase option checked too: bad input stops here, before any engine."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file", where=str(path), fix="give a YAML file")
    config = load_model_file(path, RunConfig)
    config.target.require_supported()
    try:
        check_phase_options(config)
    except ValidationError as exc:
        _, lines = load_yaml(path)
        raise validation_error(exc, path, lines) from None
    return config


# Option names any phase library takes, and the smallest sane value (the libraries own their models).
_AT_LEAST = {
    "timeout_s": 1e-9,
    "request_timeout_s": 1e-9,
    "concurrency": 1,
    "max_tokens": 1,
    "task_max_tokens": 1,
    "token_budget": 1,
    "score_top_k": 1,
    "top_k": 1,
    "num_prompts": 1,
    "sharegpt_texts": 0,
    "task_limit": 1,
    "lmeval_limit": 1,
}


def check_phase_options(config: RunConfig) -> None:
    """Validate `phases.*.options` against the phase libraries' own option models (pydantic
    ValidationError with the full key path), so a bad value fails the run before it starts."""
    phases = config.phases
    _at_least(phases.smoke.options, ("phases", "smoke", "options"))
    _at_least(phases.consistency.options, ("phases", "consistency", "options"))
    _at_least(phases.bench.options, ("phases", "bench", "options"))
    try:
        from stackcert.smoke.models import SmokeOptions

        _prefixed(SmokeOptions, phases.smoke.options, ("phases", "smoke", "options"))
    except ImportError:  # an optional library that is missing: its step says so
        pass
    try:
        from stackcert.consistency.options import ConsistencyOptions

        _prefixed(ConsistencyOptions, phases.consistency.options, ("phases", "consistency", "options"))
        if config.gates.consistency:  # merged into the tolerance by the consistency step
            tolerance = {**phases.consistency.options.get("tolerance", {}), **config.gates.consistency}
            merged = {**phases.consistency.options, "tolerance": tolerance}
            _prefixed(ConsistencyOptions, merged, ("gates", "consistency"), strip=("tolerance",))
    except ImportError:
        pass
    try:
        from stackcert.bench.profiles import Profile, resolve_profile
    except ImportError:
        return
    for name in phases.bench.profiles:
        for profile in resolve_profile(name):
            merged = {**profile.model_dump(), **phases.bench.options}
            _prefixed(Profile, merged, ("phases", "bench", "options"))


def _prefixed(
    model: Any, data: dict[str, Any], prefix: tuple[str, ...], *, strip: tuple[str, ...] = ()
) -> None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": (*prefix, *_strip(tuple(e["loc"]), strip))} for e in exc.errors()]
        raise ValidationError.from_exception_data(exc.title, errors) from None  # type: ignore[arg-type]


def _strip(loc: tuple[Any, ...], head: tuple[str, ...]) -> tuple[Any, ...]:
    return loc[len(head) :] if head and loc[: len(head)] == head else loc


def _at_least(options: dict[str, Any], prefix: tuple[str | int, ...]) -> None:
    for key, value in options.items():
        if isinstance(value, dict):
            _at_least(value, (*prefix, key))
            continue
        low = _AT_LEAST.get(key)
        numbers = value if isinstance(value, list) else [value]
        if low is None or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            continue
        bad = [v for v in numbers if v < low]
        if bad:
            error = {
                "type": "greater_than_equal",
                "loc": (*prefix, key),
                "input": bad[0],
                "ctx": {"ge": low if low >= 1 else 0},
            }
            if low < 1 and low > 0:
                error = {"type": "greater_than", "loc": (*prefix, key), "input": bad[0], "ctx": {"gt": 0}}
            raise ValidationError.from_exception_data("phase options", [error])  # type: ignore[list-item]
