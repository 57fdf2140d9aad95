"""RunConfig: everything `stackcert run` needs — model, target, stacks, phases, gates, output.

Loaded from YAML with `stackcert.yamlio.load_model_file` (unknown keys are refused and every error
names the key and the line), or built from a preset with `from_preset`. Every key is documented
in docs/config.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import Field, model_validator

from stackcert.bench.profiles import Profile, ProfileOverrides, resolve_profile
from stackcert.config import ModelSpec, StackSpec, Strict, load_preset
from stackcert.consistency.options import ConsistencyOptions
from stackcert.consistency.tokens import TokenSettings
from stackcert.consistency.tolerance import ToleranceOverrides
from stackcert.errors import ConfigError, UsageError
from stackcert.features.models import FeatureOptions
from stackcert.smoke.models import SmokeOptions
from stackcert.targets.spec import TargetSpec
from stackcert.yamlio import load_model_file


class PhaseSpec(Strict):
    """What every phase has: on or off, and a hard time limit."""

    enabled: bool = True
    timeout_s: float = Field(600.0, gt=0, description="hard limit for the step")


class SmokePhase(PhaseSpec):
    """The smoke phase and its options (SmokeOptions; the offline part would start the engine twice)."""

    timeout_s: float = Field(300.0, gt=0)
    options: SmokeOptions = Field(default_factory=lambda: SmokeOptions(offline=False))


class ConsistencyPhase(PhaseSpec):
    """The consistency phase and its options (ConsistencyOptions)."""

    options: ConsistencyOptions = Field(default_factory=ConsistencyOptions)


class BenchPhase(PhaseSpec):
    """The benchmark: which profiles, and values set on all of them."""

    profiles: list[str] = Field(default_factory=lambda: ["demo"], description="bench profile names")
    options: ProfileOverrides = Field(default_factory=ProfileOverrides)

    def resolved(self) -> list[Profile]:
        """The profiles to run, with the overrides applied."""
        return [self.options.apply(p) for name in self.profiles for p in resolve_profile(name)]


class FeaturesPhase(PhaseSpec):
    """The feature matrix of the candidate's running server, and its time budget."""

    timeout_s: float = Field(300.0, gt=0)
    options: FeatureOptions = Field(default_factory=FeatureOptions)


class WeightsPhase(PhaseSpec):
    """The weight gates: stage A (dummy weights, its own engine start) and stage B (real weights)."""

    timeout_s: float = Field(900.0, gt=0)
    dummy: bool = Field(True, description="run stage A (one more engine start, in eager mode)")


class BisectPhase(PhaseSpec):
    """The operator bisection's limits."""

    timeout_s: float = Field(1800.0, gt=0)
    timeout_per_probe_s: float = Field(300.0, gt=0)


class PhasesSpec(Strict):
    """The phases of a run, each typed, so loading a config validates every option."""

    smoke: SmokePhase = Field(default_factory=SmokePhase)
    consistency: ConsistencyPhase = Field(default_factory=ConsistencyPhase)
    bench: BenchPhase = Field(default_factory=BenchPhase)
    features: FeaturesPhase = Field(default_factory=FeaturesPhase)
    weights: WeightsPhase = Field(default_factory=WeightsPhase)
    bisect: BisectPhase = Field(default_factory=BisectPhase)


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
    consistency: ToleranceOverrides = Field(
        default_factory=ToleranceOverrides,
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
    def _gate_tolerance(self) -> RunConfig:
        """The consistency gate's tolerance overrides the phase's own (checked against ToleranceSettings)."""
        options = self.phases.consistency.options
        tolerance = self.gates.consistency.apply(options.tolerance)
        if tolerance != options.tolerance:
            self.phases.consistency.options = options.model_copy(update={"tolerance": tolerance})
        return self

    @model_validator(mode="after")
    def _bench_profiles(self) -> RunConfig:
        """Every bench profile exists and takes the overrides (a clash fails here, not mid-run)."""
        try:
            self.phases.bench.resolved()
        except UsageError as exc:
            raise ValueError(exc.one_line()) from None
        return self

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


# Phase sizes for CPU engines, chosen so the whole demo fits in 15 minutes on 2 CPU cores.
def cpu_demo_phases() -> PhasesSpec:
    """Phase sizes for CPU engines, chosen so the whole demo fits in 15 minutes on 2 CPU cores."""
    # 16 greedy prompts × 32 tokens; 4 ShareGPT texts of 128 tokens scored (up to 16 while a check is
    # inconclusive); number_sequence from 100 items up to 400 while the accuracy gate cannot decide
    # (identical answers at ~85 % accuracy decide at about 100).
    consistency = ConsistencyOptions(
        tokens=TokenSettings(max_tokens=32),
        sharegpt_texts=4,
        max_sharegpt_texts=16,
        token_budget=128,
        tasks=["number_sequence"],
        task_limit=100,
        task_budget=400,
    )
    return PhasesSpec(
        smoke=SmokePhase(timeout_s=300),
        consistency=ConsistencyPhase(timeout_s=900, options=consistency),
        bench=BenchPhase(timeout_s=600, profiles=["demo"]),
        bisect=BisectPhase(enabled=True, timeout_s=900),
    )


def host_has_cuda() -> bool:
    """An NVIDIA driver is present on this host (its device nodes or nvidia-smi)."""
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def runs_on_cpu(stack: StackSpec, cuda: bool) -> bool:
    """The stack's engine computes on this host's CPU (endpoint stacks compute elsewhere)."""
    if stack.url:
        return False
    device = str(stack.engine_args.get("device", "")).lower()
    return device == "cpu" or (not cuda and device in ("", "auto"))


def from_preset(name: str, *, output_dir: str = "runs", cuda: bool | None = None) -> RunConfig:
    """The RunConfig of a preset; CPU engines get the demo phase sizes and a low memory share."""
    preset = load_preset(name)
    cuda = host_has_cuda() if cuda is None else cuda
    cpu = any(runs_on_cpu(s, cuda) for s in preset.stacks.values())
    stacks = {k: _low_memory(v) if runs_on_cpu(v, cuda) else v for k, v in preset.stacks.items()}
    return RunConfig(
        name=preset.name,
        model=preset.model,
        stacks=stacks,
        reference=preset.reference,
        candidate=preset.candidate,
        phases=cpu_demo_phases() if cpu else PhasesSpec(),
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
    return config
