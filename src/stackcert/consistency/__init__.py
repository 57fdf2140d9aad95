"""Consistency of a candidate stack with the reference: greedy tokens, teacher-forced log-probs,
and paired task accuracy. Entry point: `run_consistency`."""

from stackcert.consistency.options import ConsistencyOptions, ConsistencyResult
from stackcert.consistency.pipeline import run_consistency

__all__ = ["ConsistencyOptions", "ConsistencyResult", "run_consistency"]
