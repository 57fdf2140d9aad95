"""A/B diff of two smoke runs: which stack failed, is it the same error, which component is at fault.

A pure function over two SmokeResults. The truth table follows FlagRelease's model-verify skill
(run A without the replacement components, run B with them), with INCOMPLETE added for runs that
timed out or were skipped, where no conclusion can honestly be drawn.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from stackcert.evidence.findings import Component, Finding, Severity
from stackcert.evidence.signature import normalise
from stackcert.smoke.models import SmokeResult
from stackcert.status import Status


class Conclusion(StrEnum):
    """What the pair of smoke runs says: both pass, candidate only, same or different errors, incomplete."""

    BOTH_PASS = "BOTH_PASS"
    CANDIDATE_ERROR = "CANDIDATE_ERROR"  # FlagRelease: MULTICHIP_ERROR
    SAME_ERROR = "SAME_ERROR"
    DIFFERENT_ERRORS = "DIFFERENT_ERRORS"
    REFERENCE_ONLY_FAIL = "REFERENCE_ONLY_FAIL"
    INCOMPLETE = "INCOMPLETE"


class Recommended(StrEnum):
    """The stack to use after the diff: full (the candidate), base (the reference) or none."""

    FULL = "full"  # the candidate (with its components) works
    BASE = "base"  # only the reference works
    NONE = "none"  # neither is known to work


class CheckRow(BaseModel):
    """One (phase, check) with its status on the reference and on the candidate."""

    phase: str
    check: str
    reference: Status | None = None
    candidate: Status | None = None

    @property
    def differs(self) -> bool:
        """Whether the two stacks ended the check differently."""
        return self.reference != self.candidate


class DiffAnalysis(BaseModel):
    """The diff's verdict: conclusion, the component at fault, recommended stack, and the evidence."""

    conclusion: Conclusion
    detail: str
    reference_status: Status
    candidate_status: Status
    component: str | None = Field(
        None, description="the component at fault, from the candidate-only findings"
    )
    component_evidence: str = ""
    recommended_stack: Recommended
    candidate_only: list[Finding] = Field(default_factory=list)
    shared_signatures: list[str] = Field(default_factory=list)
    rows: list[CheckRow] = Field(default_factory=list)


def _bad(status: Status) -> bool:
    return status in (Status.FAIL, Status.CRASH)


def _inconclusive(status: Status) -> bool:
    return not (status == Status.PASS or _bad(status))


def finding_signature(finding: Finding) -> str:
    """The key findings are matched by across runs: their signature, else category and message."""
    return finding.signature or f"{finding.category}: {normalise(finding.message)}"


def _errors(run: SmokeResult) -> list[Finding]:
    return [f for f in run.findings if f.severity == Severity.ERROR]


def check_rows(reference: SmokeResult, candidate: SmokeResult) -> list[CheckRow]:
    """One row per (phase, check) seen in either run, in the order the checks ran."""
    rows: dict[tuple[str, str], CheckRow] = {}
    for role, run in (("reference", reference), ("candidate", candidate)):
        for phase, result in (("offline", run.phase_a_offline), ("serve", run.phase_b_serve)):
            for check in result.checks:
                row = rows.setdefault((phase, check.name), CheckRow(phase=phase, check=check.name))
                setattr(row, role, check.status)
    return list(rows.values())


def _component(only: list[Finding], reference: SmokeResult, candidate: SmokeResult) -> tuple[str | None, str]:
    """The component named by the candidate-only findings; else the one component the candidate adds."""
    for finding in only:
        if finding.component != Component.UNKNOWN:
            return finding.component.value, f"candidate-only finding: {finding.located()}"
    added = [c for c in candidate.stack_components if c not in reference.stack_components]
    if only and len(added) == 1:
        return added[0], f"inferred: '{added[0]}' is the only component the candidate adds"
    return None, ""


def _first_diff(rows: list[CheckRow]) -> str:
    for row in rows:
        if row.differs:
            ref = row.reference.value if row.reference else "-"
            cand = row.candidate.value if row.candidate else "-"
            return f"first difference: {row.phase}/{row.check} reference={ref} candidate={cand}"
    return "no check differs"


def diff_runs(reference: SmokeResult, candidate: SmokeResult) -> DiffAnalysis:
    """Classify the pair of runs (see the module doc); never raises."""
    r, c = reference.status, candidate.status
    ref_sigs = {finding_signature(f) for f in _errors(reference)}
    cand_errors = _errors(candidate)
    only = [f for f in cand_errors if finding_signature(f) not in ref_sigs]
    shared = sorted(ref_sigs & {finding_signature(f) for f in cand_errors})
    rows = check_rows(reference, candidate)
    component, evidence = _component(only, reference, candidate)
    where = _first_diff(rows)

    if _inconclusive(r) or _inconclusive(c):
        conclusion = Conclusion.INCOMPLETE
        recommended = (
            Recommended.FULL
            if c == Status.PASS
            else Recommended.BASE
            if r == Status.PASS
            else Recommended.NONE
        )
        detail = f"no conclusion: reference {r.value}, candidate {c.value} ({where})"
    elif r == Status.PASS and c == Status.PASS:
        conclusion, recommended = Conclusion.BOTH_PASS, Recommended.FULL
        detail, component, evidence = "both stacks pass every check", None, ""
    elif r == Status.PASS:
        conclusion, recommended = Conclusion.CANDIDATE_ERROR, Recommended.BASE
        head = only[0].located() if only else where
        detail = f"only the candidate fails ({c.value}): {head}"
    elif c == Status.PASS:
        conclusion, recommended = Conclusion.REFERENCE_ONLY_FAIL, Recommended.FULL
        detail, component, evidence = f"only the reference fails ({r.value}); the candidate passes", None, ""
    elif not only:
        conclusion, recommended = Conclusion.SAME_ERROR, Recommended.NONE
        detail = f"both fail with the same error: {shared[0] if shared else where}"
        component, evidence = None, "the error does not depend on the candidate's components"
    else:
        conclusion, recommended = Conclusion.DIFFERENT_ERRORS, Recommended.NONE
        detail = f"both fail, differently; candidate-only: {only[0].located()}"
    return DiffAnalysis(
        conclusion=conclusion,
        detail=detail,
        reference_status=r,
        candidate_status=c,
        component=component,
        component_evidence=evidence,
        recommended_stack=recommended,
        candidate_only=only,
        shared_signatures=shared,
        rows=rows,
    )
