"""The noise model of a comparison: measured batch noise, the tolerance of legitimate numerical change,
and the three-way decision (pass / fail / inconclusive) of each check with its power.

Two measured quantities, never one fixed constant:

* **noise** — the reference against itself under the same load shape as the comparison (same
  concurrency, another request order, so other batch compositions). vLLM is not batch-invariant:
  this is never zero under load.
* **tolerance** — the envelope of differences that correct builds of the same model show (eager vs
  compiled kernels, other batching, other attention implementations): the equivalence panel of
  `benchmarks/verdict_quality.py`, shipped per dtype in `data/tolerance.json` with its provenance.

The limit of each check is max(margin × envelope, noise_multiple × noise). The statistic is computed
per scored text, and a cluster bootstrap over texts (seeded, so reruns agree) gives one-sided (1 − α)
bounds: upper bound ≤ limit → pass (shown to be inside the tolerance, so the PASS has the power for
its own threshold); lower bound > limit → fail; otherwise inconclusive, with the number of texts that
would decide it. With three checks at α/3 each (Bonferroni) the false-alarm rate of the whole gate
against a candidate exactly at the limit is at most α; against a candidate inside the envelope it is
far lower (measured in docs/consistency.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, computed_field

Decision = Literal["pass", "fail", "inconclusive"]


class Envelope(BaseModel):
    """The largest differences measured between correct builds of one model in one dtype."""

    mean_kl: float
    top1_disagreement: float
    dlogprob_p99: float
    dlogprob_max: float
    regret: float = Field(description="largest cross-score regret at a divergence (nats)")
    comparisons: int = Field(0, description="equivalent comparisons the envelope was measured on")
    source: str = ""


class ToleranceSettings(BaseModel):
    """How limits derive from the envelope and the measured noise, and the error rates of a decision."""

    model_config = ConfigDict(extra="forbid")

    dtype: str = Field("auto", description="envelope to use: bfloat16 | float16 | float32 | auto (model)")
    margin: float = Field(1.5, description="limit ≥ margin × the equivalence envelope")
    noise_multiple: float = Field(3.0, description="limit ≥ this × the measured batch noise")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="false-alarm rate of the whole gate")
    power: float = Field(0.8, description="power for the smallest detectable value (0.8 or 0.9)")
    bootstrap: int = Field(2000, ge=200, description="bootstrap resamples over texts")
    fixed_mean_kl: float | None = None
    fixed_top1_disagreement: float | None = None
    fixed_dlogprob_p99: float | None = None
    fixed_regret: float | None = None


class ToleranceOverrides(BaseModel):
    """Tolerance values a run's consistency gate sets (`gates.consistency`); unset ones keep the phase's."""

    model_config = ConfigDict(extra="forbid")

    dtype: str | None = None
    margin: float | None = Field(None, gt=0)
    noise_multiple: float | None = Field(None, ge=0)
    alpha: float | None = Field(None, gt=0, lt=0.5)
    power: float | None = Field(None, gt=0, lt=1)
    bootstrap: int | None = Field(None, ge=200)
    fixed_mean_kl: float | None = None
    fixed_top1_disagreement: float | None = None
    fixed_dlogprob_p99: float | None = None
    fixed_regret: float | None = None

    def apply(self, settings: ToleranceSettings) -> ToleranceSettings:
        """The settings with these values set."""
        return ToleranceSettings.model_validate(
            {**settings.model_dump(), **self.model_dump(exclude_none=True)}
        )


def envelope_for(dtype: str) -> Envelope:
    """The shipped equivalence envelope of a dtype (bf16 when unknown: the widest)."""
    raw = (resources.files("stackcert.consistency") / "data" / "tolerance.json").read_text()
    table = json.loads(raw)["envelopes"]
    key = {"half": "float16", "float": "float32", "auto": "bfloat16"}.get(dtype, dtype)
    return Envelope.model_validate(table.get(key, table["bfloat16"]))


def probe_tolerance(dtype: str, settings: ToleranceSettings | None = None) -> float:
    """The largest |Δ log-prob| a bisection probe accepts: the same envelope the consistency gate
    judges with (margin × the largest per-token difference of correct builds), so bisection looks
    for exactly what the gate calls a fault."""
    s = settings or ToleranceSettings()
    return s.margin * envelope_for(dtype).dlogprob_max


class Check(BaseModel):
    """One metric judged against its limit, with the numbers behind the decision."""

    metric: str
    value: float = Field(description="candidate vs reference")
    ci_low: float = Field(description="one-sided lower confidence bound of the value")
    ci_high: float = Field(description="one-sided upper confidence bound of the value")
    noise: float = Field(description="the reference against itself, same load shape")
    tolerance: float = Field(description="margin × the equivalence envelope")
    limit: float
    decision: Decision
    min_detectable: float = Field(description="smallest value this sample detects with the set power")
    texts_needed: int | None = Field(None, description="texts that would decide an inconclusive check")
    floor: float = Field(0.0, description="alias of noise, kept for older readers")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when the check passed."""
        return self.decision == "pass"

    def describe(self) -> str:
        """One line: value, bounds, limit and where it came from."""
        ratio = self.limit / self.value if self.value > 0 else math.inf
        return (
            f"{self.metric} {self.value:.3g} (bound {self.ci_low:.3g}..{self.ci_high:.3g}) vs limit "
            f"{self.limit:.3g} = max(tolerance {self.tolerance:.3g}, noise×k; noise {self.noise:.3g}): "
            f"{self.decision}" + (f", {ratio:.1f}× below the limit" if self.decision == "pass" else "")
        )


def z_of(p: float) -> float:
    """The standard normal quantile (scipy imported lazily: it costs ~0.8 s at CLI start)."""
    from scipy import stats as sps

    return float(sps.norm.ppf(p))


def cluster_bootstrap(
    groups: Sequence[Sequence[float]], stat: Callable[[np.ndarray], float], resamples: int, seed: int = 0
) -> np.ndarray:
    """Resample whole groups (texts) with replacement and return the statistic of each resample."""
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrays:
        return np.zeros(1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(arrays), size=(resamples, len(arrays)))
    return np.asarray([stat(np.concatenate([arrays[i] for i in row])) for row in idx])


def judge_metric(
    metric: str,
    groups: Sequence[Sequence[float]],
    stat: Callable[[np.ndarray], float],
    *,
    noise: float,
    tolerance: float,
    settings: ToleranceSettings,
    fixed: float | None,
    checks: int,
) -> Check:
    """Decide one metric: bootstrap bounds over texts against max(tolerance, k × noise) (or a fixed limit)."""
    pooled = np.concatenate([np.asarray(g, dtype=float) for g in groups if len(g)] or [np.zeros(1)])
    a = settings.alpha / max(1, checks)
    with np.errstate(invalid="ignore"):  # NaN / inf differences are judged below, not warned about
        value = float(stat(pooled))
        boots = cluster_bootstrap(groups, stat, settings.bootstrap)
        lo, hi = float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))
    limit = fixed if fixed is not None else max(tolerance, settings.noise_multiple * noise)
    decision: Decision = "pass" if hi <= limit else "fail" if lo > limit else "inconclusive"
    if not (math.isfinite(value) and math.isfinite(lo) and math.isfinite(hi)):
        decision = "fail"  # NaN or infinite differences: nothing a correct build produces
    with np.errstate(invalid="ignore"):
        se = float(np.std(boots, ddof=1)) if len(boots) > 1 else 0.0
    z_a, z_b = z_of(1 - a), z_of(settings.power)
    needed: int | None = None
    n = sum(1 for g in groups if len(g))
    if decision == "inconclusive" and se > 0 and value != limit:
        needed = math.ceil(n * (z_a * se / abs(limit - value)) ** 2)
    return Check(
        metric=metric,
        value=value,
        ci_low=lo,
        ci_high=hi,
        noise=noise,
        floor=noise,
        tolerance=tolerance,
        limit=limit,
        decision=decision,
        min_detectable=limit + (z_a + z_b) * se,
        texts_needed=needed,
    )


def combine_decisions(decisions: Sequence[Decision]) -> Decision:
    """Worst of several decisions: fail > inconclusive > pass."""
    return max(decisions, key=("pass", "inconclusive", "fail").index, default="pass")
