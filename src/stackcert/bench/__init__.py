"""Serving benchmark: streaming client, load patterns, datasets, metrics (vLLM's), profiles, A/B gate."""

from stackcert.bench.compare import BenchComparison, compare_bench
from stackcert.bench.profiles import BUILTIN, Profile, ScaleLimits, resolve_profile, scale_profile
from stackcert.bench.records import BenchResult, PointResult, RequestRecord, RunMetrics
from stackcert.bench.runner import run_bench, run_bench_async

__all__ = [
    "BUILTIN",
    "BenchComparison",
    "BenchResult",
    "PointResult",
    "Profile",
    "RequestRecord",
    "RunMetrics",
    "ScaleLimits",
    "compare_bench",
    "resolve_profile",
    "run_bench",
    "run_bench_async",
    "scale_profile",
]
