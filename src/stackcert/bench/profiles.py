"""Benchmark profiles: the built-in ones (FlagRelease's perf-test set, its quick profile and
concurrency matrix, a CPU demo), user profiles from YAML, and scaling to what a server can take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stackcert.config import pick
from stackcert.errors import ConfigError
from stackcert.yamlio import load_model_file


class Profile(BaseModel):
    """One benchmark workload: dataset, token lengths, load points (concurrency or rate), repeats, goodput."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    dataset: Literal["random", "sharegpt", "prefix"] = "random"
    input_len: int = Field(256, ge=1)
    output_len: int = Field(128, ge=1)
    range_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    prefix_len: int = Field(0, ge=0)
    num_prompts: int = Field(100, ge=1)
    prompts_per_concurrency: int | None = Field(None, ge=1, description="per point: max(num_prompts, k*c)")
    concurrency: list[int] = Field(default_factory=lambda: [1])
    request_rate: list[float] = Field(
        default_factory=list, description="open loop (req/s); replaces concurrency"
    )
    max_concurrency: int | None = Field(None, ge=1, description="cap on requests in flight at a request rate")
    burstiness: float = Field(1.0, gt=0.0)
    warmup: int = Field(2, ge=0)
    repeats: int = Field(1, ge=1)
    discard_first: bool = False
    endpoint: Literal["completions", "chat"] = "completions"
    ignore_eos: bool = True
    percentiles: list[float] = Field(default_factory=lambda: [50.0, 90.0, 95.0, 99.0])
    goodput_ms: dict[Literal["ttft", "tpot", "e2el"], float] = Field(default_factory=dict)
    seed: int = 0
    timeout_s: float = Field(600.0, gt=0)
    from_file: bool = Field(
        False,
        description="written by the user: scaled only to max_model_len (and then said so), never to the host",
    )
    scaled_from: dict[str, Any] | None = None
    scale_reason: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Profile:
        if any(c < 1 for c in self.concurrency):
            raise ValueError("concurrency values must be >= 1")
        if any(r <= 0 for r in self.request_rate):
            raise ValueError("request_rate values must be > 0 (use concurrency for a closed loop)")
        if not self.concurrency and not self.request_rate:
            raise ValueError("give concurrency or request_rate")
        if self.dataset == "prefix" and not 0 < self.prefix_len < self.input_len:
            raise ValueError("dataset 'prefix' needs 0 < prefix_len < input_len")
        if any(not 0 < p < 100 for p in self.percentiles):
            raise ValueError("percentiles must be between 0 and 100")
        if self.discard_first and self.repeats < 2:
            raise ValueError("discard_first needs repeats >= 2")
        return self

    def points(self) -> list[tuple[str, int | None, float | None]]:
        """(label, concurrency, rate) of every load point of the sweep."""
        if self.request_rate:
            return [(f"rate={r:g}", self.max_concurrency, r) for r in self.request_rate]
        return [(f"c={c}", c, None) for c in self.concurrency]

    def prompts_for(self, concurrency: int | None) -> int:
        """How many prompts one load point sends: num_prompts, or prompts_per_concurrency × c when larger."""
        if self.prompts_per_concurrency and concurrency:
            return max(self.num_prompts, self.prompts_per_concurrency * concurrency)
        return self.num_prompts


class ProfileOverrides(BaseModel):
    """Values a run config sets on every profile it runs (`phases.bench.options`); unset keys keep theirs."""

    model_config = ConfigDict(extra="forbid")

    dataset: Literal["random", "sharegpt", "prefix"] | None = None
    input_len: int | None = Field(None, ge=1)
    output_len: int | None = Field(None, ge=1)
    range_ratio: float | None = Field(None, ge=0.0, lt=1.0)
    prefix_len: int | None = Field(None, ge=0)
    num_prompts: int | None = Field(None, ge=1)
    prompts_per_concurrency: int | None = Field(None, ge=1)
    concurrency: list[Annotated[int, Field(ge=1)]] | None = None
    request_rate: list[Annotated[float, Field(gt=0)]] | None = None
    max_concurrency: int | None = Field(None, ge=1)
    burstiness: float | None = Field(None, gt=0.0)
    warmup: int | None = Field(None, ge=0)
    repeats: int | None = Field(None, ge=1)
    discard_first: bool | None = None
    endpoint: Literal["completions", "chat"] | None = None
    ignore_eos: bool | None = None
    percentiles: list[float] | None = None
    seed: int | None = None
    timeout_s: float | None = Field(None, gt=0)

    def apply(self, profile: Profile) -> Profile:
        """The profile with these values set, checked again as a whole (ValidationError when it clashes)."""
        update = self.model_dump(exclude_none=True)
        if not update:
            return profile
        return Profile.model_validate({**profile.model_dump(), **update})


class ProfileFile(BaseModel):
    """A user's profile file: a non-empty list of profiles."""

    model_config = ConfigDict(extra="forbid")
    profiles: list[Profile] = Field(min_length=1)


# FlagRelease's perf-test skill (flagos-performance-testing 8.0.0, benchmark_runner.py): the
# comprehensive strategy runs each case of its test matrix at these concurrencies with
# num_prompts = concurrency after 2 warm-up requests; the quick strategy runs 4k/1k at concurrency
# 64, 64 requests per round, 5 rounds, the first discarded, the mean of the other 4.
MATRIX = [1, 4, 16, 64, 128, 256]
MATRIX_CASES = [(4096, 1024), (1024, 1024), (8192, 1024)]


def _perf(name: str, i: int, o: int, desc: str, **kw: Any) -> Profile:
    base: dict[str, Any] = {"num_prompts": 256, "concurrency": [64], "warmup": 4}
    base.update(kw)
    return Profile(name=name, input_len=i, output_len=o, description=desc, **base)


def _matrix(i: int, o: int) -> Profile:
    return _perf(
        f"matrix-{i // 1024}k-{o // 1024}k",
        i,
        o,
        f"FlagRelease comprehensive: {i}/{o} at concurrency {', '.join(map(str, MATRIX))}, "
        "requests = concurrency",
        num_prompts=1,
        prompts_per_concurrency=1,
        concurrency=MATRIX,
        warmup=2,
    )


BUILTIN: dict[str, Profile] = {
    p.name: p
    for p in [
        _perf("perf-256-128", 256, 128, "perf-test set: short prompt, short answer"),
        _perf("perf-4096-128", 4096, 128, "perf-test set: long prompt (prefill bound)"),
        _perf("perf-256-1024", 256, 1024, "perf-test set: long answer (decode bound)"),
        _perf("perf-4096-1024", 4096, 1024, "perf-test set: long prompt and answer"),
        _perf(
            "perf-high-concurrency",
            1024,
            512,
            "perf-test set: 500 requests at high concurrency",
            num_prompts=500,
            concurrency=[256],
        ),
        _perf(
            "quick",
            4096,
            1024,
            "FlagRelease quick: 4k/1k, concurrency 64, 64 requests x 5 rounds, first discarded",
            num_prompts=64,
            warmup=0,  # the discarded first round is the warm-up
            repeats=5,
            discard_first=True,
        ),
        *(_matrix(i, o) for i, o in MATRIX_CASES),
        Profile(
            name="smoke",
            input_len=64,
            output_len=32,
            num_prompts=12,
            concurrency=[1, 4],
            warmup=1,
            description="tiny CPU demo: 64 in / 32 out, concurrency 1 and 4",
        ),
        Profile(
            name="sharegpt",
            dataset="sharegpt",
            input_len=1024,
            output_len=256,
            num_prompts=200,
            concurrency=[16],
            description="ShareGPT conversations (answer lengths from the data)",
        ),
        Profile(
            name="prefix",
            dataset="prefix",
            input_len=1024,
            prefix_len=768,
            output_len=128,
            num_prompts=128,
            concurrency=[16],
            description="shared 768-token prefix (prefix caching)",
        ),
    ]
}
ALIASES = {"demo": "smoke"}
GROUPS = {"matrix": [f"matrix-{i // 1024}k-{o // 1024}k" for i, o in MATRIX_CASES]}


class ScaleLimits(BaseModel):
    """What the server and machine can take; None means no limit."""

    max_model_len: int | None = None
    max_requests: int | None = None
    max_concurrency: int | None = None
    max_input_len: int | None = None
    max_output_len: int | None = None
    max_repeats: int | None = None
    reason: str = ""

    @classmethod
    def cpu(cls, max_model_len: int | None = None) -> ScaleLimits:
        """The limits of a CPU engine: at most 16 requests, 8 in flight, 512 in / 64 out tokens, 2 repeats."""
        return cls(
            max_model_len=max_model_len,
            max_requests=16,
            max_concurrency=8,
            max_input_len=512,
            max_output_len=64,
            max_repeats=2,
            reason="CPU engine: small request counts and lengths",
        )


def _cap(value: int, limit: int | None) -> int:
    return min(value, limit) if limit is not None else value


def scale_profile(profile: Profile, limits: ScaleLimits) -> Profile:
    """A copy that fits the limits, with `scaled_from` (the original values) and the reason."""
    p = profile.model_copy(deep=True)
    reasons: list[str] = []
    p.input_len = _cap(p.input_len, limits.max_input_len)
    p.output_len = _cap(p.output_len, limits.max_output_len)
    if (p.input_len, p.output_len) != (profile.input_len, profile.output_len) and limits.reason:
        reasons.append(limits.reason)
    if limits.max_model_len:
        grow = 1.0 + p.range_ratio
        need = (p.input_len + p.output_len) * grow
        if need > limits.max_model_len:
            f = (limits.max_model_len - 1) / need
            p.input_len = max(int(p.input_len * f), 2)
            p.output_len = max(int(p.output_len * f), 1)
            reasons.append(f"max_model_len {limits.max_model_len} < {int(need)} tokens per request")
    if p.dataset == "prefix" and p.prefix_len >= p.input_len:
        p.prefix_len = max(p.input_len * 3 // 4, 1)
    before = (p.num_prompts, p.prompts_per_concurrency, list(p.concurrency), p.max_concurrency, p.repeats)
    p.num_prompts = _cap(p.num_prompts, limits.max_requests)
    if limits.max_requests is not None:
        p.prompts_per_concurrency = None
    p.concurrency = sorted({_cap(c, limits.max_concurrency) for c in p.concurrency})
    if p.max_concurrency is not None:
        p.max_concurrency = _cap(p.max_concurrency, limits.max_concurrency)
    p.repeats = _cap(p.repeats, limits.max_repeats)
    if p.repeats < 2:
        p.discard_first = False
    p.warmup = min(p.warmup, p.num_prompts)
    after = (p.num_prompts, p.prompts_per_concurrency, list(p.concurrency), p.max_concurrency, p.repeats)
    if after != before and limits.reason and limits.reason not in reasons:
        reasons.append(limits.reason)
    changed = {
        k: getattr(profile, k)
        for k in (
            "input_len",
            "output_len",
            "prefix_len",
            "num_prompts",
            "prompts_per_concurrency",
            "concurrency",
            "max_concurrency",
            "repeats",
        )
        if getattr(profile, k) != getattr(p, k)
    }
    if changed:
        p.scaled_from = changed
        p.scale_reason = "; ".join(reasons) or "scaled to the limits"
    return p


def resolve_profile(name_or_file: str) -> list[Profile]:
    """A built-in profile name, or a YAML file with `profiles: [...]`."""
    if name_or_file.endswith((".yaml", ".yml")) or Path(name_or_file).is_file():
        path = Path(name_or_file)
        if not path.exists():
            raise ConfigError(f"profile file not found: {path}", fix="check the path")
        return [p.model_copy(update={"from_file": True}) for p in load_model_file(path, ProfileFile).profiles]
    name = ALIASES.get(name_or_file, name_or_file)
    if name in GROUPS:
        return [BUILTIN[member].model_copy(deep=True) for member in GROUPS[name]]
    return [pick(name, BUILTIN, what="bench profile", where="--profile").model_copy(deep=True)]
