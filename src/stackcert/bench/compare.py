"""A/B performance gate: candidate/reference throughput ratios for every (profile, load point)."""

from __future__ import annotations

import statistics

from pydantic import BaseModel, Field

from stackcert.bench.records import BenchResult, PointResult, RunMetrics


class Spread(BaseModel):
    """Mean, min, max, population standard deviation and count of a series of measurements."""

    mean: float = 0.0
    min: float = 0.0
    max: float = 0.0
    std: float = 0.0
    n: int = 0


def spread(values: list[float]) -> Spread:
    """The spread of values (all zeros for an empty list)."""
    if not values:
        return Spread()
    return Spread(
        mean=statistics.fmean(values),
        min=min(values),
        max=max(values),
        std=statistics.pstdev(values) if len(values) > 1 else 0.0,
        n=len(values),
    )


class PointComparison(BaseModel):
    """Candidate against reference at one (profile, load point): throughput spreads, ratios, gate."""

    profile: str
    point: str
    reference_output: Spread
    candidate_output: Spread
    reference_total: Spread
    candidate_total: Spread
    output_ratio: float | None
    total_ratio: float | None
    ratio: float | None  # min of both: the gated number
    passed: bool
    note: str = ""


class BenchComparison(BaseModel):
    """The performance gate over every point: passed, the lowest ratio, and points only one side ran."""

    threshold: float
    passed: bool
    points: list[PointComparison] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)  # points only one side has
    min_ratio: float | None = None


def _col(runs: list[RunMetrics], key: str) -> list[float]:
    return [float(getattr(m, key)) for m in runs]


def _ratio(cand: Spread, ref: Spread) -> float | None:
    return cand.mean / ref.mean if ref.mean > 0 else None


def _compare_point(ref: PointResult, cand: PointResult, threshold: float) -> PointComparison:
    r, c = ref.kept(), cand.kept()
    ro, co = spread(_col(r, "output_throughput")), spread(_col(c, "output_throughput"))
    rt, ct = spread(_col(r, "total_token_throughput")), spread(_col(c, "total_token_throughput"))
    out_ratio, tot_ratio = _ratio(co, ro), _ratio(ct, rt)
    ratios = [x for x in (out_ratio, tot_ratio) if x is not None]
    ratio = min(ratios) if len(ratios) == 2 else None
    failed = sum(m.failed for m in c)
    note = "reference measured no throughput" if ratio is None else ""
    if failed:
        note = f"candidate had {failed} failed request(s)"
    return PointComparison(
        profile=ref.profile,
        point=ref.point,
        reference_output=ro,
        candidate_output=co,
        reference_total=rt,
        candidate_total=ct,
        output_ratio=out_ratio,
        total_ratio=tot_ratio,
        ratio=ratio,
        passed=ratio is not None and ratio >= threshold and not failed,
        note=note,
    )


def compare_bench(
    reference: BenchResult, candidate: BenchResult, *, threshold: float = 0.8
) -> BenchComparison:
    """Gate: for every (profile, point) both sides ran, min(output, total throughput ratio) >= threshold."""
    ref = {(p.profile, p.point): p for p in reference.points}
    cand = {(p.profile, p.point): p for p in candidate.points}
    rows = [_compare_point(ref[k], cand[k], threshold) for k in ref if k in cand]
    missing = [f"{k[0]} {k[1]}" for k in sorted(set(ref) ^ set(cand))]
    ratios = [r.ratio for r in rows if r.ratio is not None]
    passed = bool(rows) and all(r.passed for r in rows) and not [k for k in ref if k not in cand]
    return BenchComparison(
        threshold=threshold,
        passed=passed,
        points=rows,
        missing=missing,
        min_ratio=min(ratios) if ratios else None,
    )
