"""The verdict of a run, from the step statuses and the gate results. Pure: no I/O.

PASS     both stacks pass every gate                       -> recommend the candidate ("full")
PARTIAL  the reference passes; the candidate fails or misses a gate -> recommend "base"
FAIL     the engine does not import, or the reference cannot serve  -> recommend "none"
A candidate whose only open gate is an inconclusive consistency result is PARTIAL with
`retest` set, and the exit code is 4 (retest advised) instead of 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field

from stackcert.errors import ExitCode
from stackcert.runmodel.verdict import Verdict, VerdictResult
from stackcert.status import Status

__all__ = ["GateInputs", "Verdict", "VerdictResult", "decide"]


class GateInputs(BaseModel):
    """What the verdict looks at; the pipeline fills it from the ledger and the step results."""

    statuses: dict[str, Status]
    consistency: Literal["pass", "fail", "retest"] | None = None
    consistency_reasons: list[str] = Field(
        default_factory=list, description="what the consistency findings say: prompts, checks, numbers"
    )
    perf_ok: bool | None = None
    perf_ratio: float | None = None
    weights_required: bool = False
    weights_ok: bool | None = Field(None, description="weight gate B passed (real weights serve)")
    weights_reason: str = ""
    smoke_enabled: bool = True
    consistency_required: bool = True
    bench_required: bool = True


def _st(statuses: Mapping[str, Status], step: str) -> Status:
    return statuses.get(step, Status.PENDING)


def _describe(step: str, status: Status) -> str:
    return f"{step} is {status.value}"


def decide(inputs: GateInputs) -> VerdictResult:
    """The verdict from the step statuses and the gates' results."""
    s = inputs.statuses
    fail_reasons: list[str] = []
    if _st(s, "install").bad:
        fail_reasons.append("install gate: the engine does not import")
    if _st(s, "reference.serve") is not Status.PASS:
        fail_reasons.append(
            f"reference stack cannot serve ({_describe('reference.serve', _st(s, 'reference.serve'))})"
        )
    elif inputs.smoke_enabled and _st(s, "reference.smoke").bad:
        fail_reasons.append("reference stack fails its smoke test")
    if fail_reasons:
        return VerdictResult(
            verdict=Verdict.FAIL, recommended="none", exit_code=int(ExitCode.FAIL), reasons=fail_reasons
        )

    reasons: list[str] = []
    retest = False
    if _st(s, "candidate.serve") is not Status.PASS:
        reasons.append(
            f"candidate stack cannot serve ({_describe('candidate.serve', _st(s, 'candidate.serve'))})"
        )
    else:
        if inputs.smoke_enabled and _st(s, "candidate.smoke") is not Status.PASS:
            reasons.append(
                f"candidate smoke gate missed ({_describe('candidate.smoke', _st(s, 'candidate.smoke'))})"
            )
        if inputs.weights_required and inputs.weights_ok is not True:
            why = inputs.weights_reason or _describe("weights", _st(s, "weights"))
            reasons.append(f"weight gate missed ({why})")
        if inputs.consistency_required:
            detail = "; ".join(inputs.consistency_reasons)
            if inputs.consistency == "retest":
                retest = True
                reasons.append(
                    "consistency inconclusive: the sample cannot tell the candidate from the tolerance, "
                    "retest with more prompts/items" + (f" — {detail}" if detail else "")
                )
            elif inputs.consistency != "pass":
                got = inputs.consistency or _st(s, "consistency").value
                reasons.append(f"consistency gate failed ({got})" + (f": {detail}" if detail else ""))
        if inputs.bench_required and inputs.perf_ok is not True:
            if inputs.perf_ok is False and inputs.perf_ratio is not None:
                reasons.append(f"performance gate missed (ratio {inputs.perf_ratio:.2f})")
            else:
                reasons.append(
                    f"performance gate missed ({_describe('compare', _st(s, 'compare'))}, no ratio)"
                )
    if not reasons:
        return VerdictResult(verdict=Verdict.PASS, recommended="full", exit_code=int(ExitCode.PASS))
    only_retest = retest and len(reasons) == 1
    code = ExitCode.RETEST if only_retest else ExitCode.PARTIAL
    return VerdictResult(
        verdict=Verdict.PARTIAL, recommended="base", exit_code=int(code), retest=retest, reasons=reasons
    )
