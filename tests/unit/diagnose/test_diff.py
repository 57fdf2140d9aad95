"""The A/B diff table: every conclusion, the component at fault, the recommended stack."""

from __future__ import annotations

import pytest

from stackcert.diagnose.diff import Conclusion, Recommended, diff_runs
from stackcert.evidence.findings import Component, Finding, Layer, Severity
from stackcert.smoke.models import CheckResult, PhaseResult, SmokeResult
from stackcert.status import Status


def _finding(sig: str, component: Component = Component.UNKNOWN, layer: Layer = Layer.L5_SERVING) -> Finding:
    return Finding(
        step="smoke",
        phase="serve",
        layer=layer,
        component=component,
        category=sig.split(":")[0],
        signature=sig,
        message=f"message for {sig}",
    )


def run(
    status: Status, *findings: Finding, name: str = "ref", components: list[str] | None = None
) -> SmokeResult:
    check = CheckResult(name="completions", status=status, finding=findings[0] if findings else None)
    return SmokeResult(
        status=status,
        stack=name,
        engine="vllm",
        stack_components=components or [],
        phase_b_serve=PhaseResult(status=status, checks=[check]),
        findings=list(findings),
    )


GEMS = _finding("kernel_error:RuntimeError: flag_gems.ops.mm failed", Component.FLAG_GEMS, Layer.L3_KERNELS)
MODEL = _finding("model_missing: no config.json", Component.MODEL, Layer.L2_MODEL)
OOM = _finding("oom: out of memory", Component.HOST, Layer.L0_HOST)


def test_both_pass_recommends_full() -> None:
    d = diff_runs(run(Status.PASS), run(Status.PASS, name="cand"))
    assert (d.conclusion, d.recommended_stack, d.component) == (Conclusion.BOTH_PASS, Recommended.FULL, None)
    assert d.rows[0].reference == d.rows[0].candidate == Status.PASS


@pytest.mark.parametrize("bad", [Status.FAIL, Status.CRASH])
def test_candidate_error_names_the_component_of_the_candidate_only_finding(bad: Status) -> None:
    # A warning from another component comes first: attribution must skip it (errors only).
    warning = _finding("slow: took long", Component.VLLM).model_copy(update={"severity": Severity.WARNING})
    ref = run(Status.PASS)
    cand = run(bad, GEMS, name="cand")
    cand.findings.insert(0, warning)
    d = diff_runs(ref, cand)
    assert d.conclusion == Conclusion.CANDIDATE_ERROR
    assert d.recommended_stack == Recommended.BASE
    assert d.component == "flag_gems"
    assert d.candidate_only == [GEMS]
    assert "flag_gems" in d.detail


def test_candidate_error_without_a_known_component_infers_the_only_added_component() -> None:
    unknown = _finding("bad_output: degenerate", layer=Layer.L6_NUMERICS)
    d = diff_runs(run(Status.PASS), run(Status.FAIL, unknown, name="cand", components=["torch_compile"]))
    assert d.conclusion == Conclusion.CANDIDATE_ERROR
    assert d.component == "torch_compile" and d.component_evidence.startswith("inferred")
    # Two added components: no guess.
    d = diff_runs(run(Status.PASS), run(Status.FAIL, unknown, name="cand", components=["a", "b"]))
    assert d.component is None


def test_same_error_on_both_recommends_none_and_blames_no_component() -> None:
    d = diff_runs(run(Status.FAIL, MODEL), run(Status.FAIL, MODEL.model_copy(), name="cand"))
    assert (d.conclusion, d.recommended_stack, d.component) == (Conclusion.SAME_ERROR, Recommended.NONE, None)
    assert d.shared_signatures == [MODEL.signature]


def test_same_signature_with_different_wording_is_still_the_same_error() -> None:
    ref = _finding("oom: out of memory")
    cand = ref.model_copy(update={"message": "a differently worded message"})
    assert (
        diff_runs(run(Status.CRASH, ref), run(Status.FAIL, cand, name="cand")).conclusion
        == Conclusion.SAME_ERROR
    )


def test_different_errors_names_the_candidate_only_component() -> None:
    d = diff_runs(run(Status.FAIL, OOM), run(Status.CRASH, GEMS, name="cand"))
    assert d.conclusion == Conclusion.DIFFERENT_ERRORS
    assert d.recommended_stack == Recommended.NONE
    assert d.component == "flag_gems"


def test_reference_only_fail_recommends_the_candidate() -> None:
    d = diff_runs(run(Status.FAIL, OOM), run(Status.PASS, name="cand"))
    assert (d.conclusion, d.recommended_stack) == (Conclusion.REFERENCE_ONLY_FAIL, Recommended.FULL)


@pytest.mark.parametrize(
    ("ref", "cand", "recommended"),
    [
        (Status.PASS, Status.TIMEOUT, Recommended.BASE),
        (Status.PASS, Status.SKIPPED, Recommended.BASE),
        (Status.TIMEOUT, Status.PASS, Recommended.FULL),
        (Status.SKIPPED, Status.FAIL, Recommended.NONE),
        (Status.FAIL, Status.TIMEOUT, Recommended.NONE),
        (Status.TIMEOUT, Status.TIMEOUT, Recommended.NONE),
    ],
)
def test_timeouts_and_skips_are_incomplete(ref: Status, cand: Status, recommended: Recommended) -> None:
    d = diff_runs(run(ref), run(cand, name="cand"))
    assert d.conclusion == Conclusion.INCOMPLETE
    assert d.recommended_stack == recommended
    assert "no conclusion" in d.detail


def test_rows_cover_checks_seen_in_either_run() -> None:
    ref = run(Status.PASS)
    cand = run(Status.FAIL, GEMS, name="cand")
    cand.phase_b_serve.checks.insert(0, CheckResult(name="start", status=Status.FAIL))
    rows = {(r.phase, r.check): (r.reference, r.candidate) for r in diff_runs(ref, cand).rows}
    assert rows[("serve", "start")] == (None, Status.FAIL)
    assert rows[("serve", "completions")] == (Status.PASS, Status.FAIL)
