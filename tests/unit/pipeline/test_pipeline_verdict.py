"""Verdict logic: PASS / PARTIAL / FAIL, the recommended stack and the exit code."""

from __future__ import annotations

from stackcert.pipeline.verdict import GateInputs, Verdict, decide
from stackcert.status import Status

P, F, S = Status.PASS, Status.FAIL, Status.SKIPPED


def _all(**over: Status) -> dict[str, Status]:
    base = {
        k: P
        for k in (
            "env",
            "install",
            "model",
            "reference.serve",
            "reference.smoke",
            "reference.bench",
            "candidate.serve",
            "candidate.smoke",
            "candidate.bench",
            "consistency",
            "compare",
        )
    }
    base.update({k.replace("_", "."): v for k, v in over.items()})
    return base


def test_everything_passes() -> None:
    v = decide(GateInputs(statuses=_all(), consistency="pass", perf_ok=True, perf_ratio=0.95))
    assert (v.verdict, v.recommended, v.exit_code, v.reasons) == (Verdict.PASS, "full", 0, [])


def test_reference_cannot_serve_is_fail_even_if_candidate_passes() -> None:
    v = decide(GateInputs(statuses=_all(reference_serve=F), consistency="pass", perf_ok=True))
    assert (v.verdict, v.recommended, v.exit_code) == (Verdict.FAIL, "none", 1)


def test_install_gate_failure_is_fail() -> None:
    v = decide(GateInputs(statuses=_all(install=F, reference_serve=S)))
    assert v.verdict is Verdict.FAIL and any("install" in r for r in v.reasons)


def test_candidate_perf_below_threshold_is_partial() -> None:
    v = decide(GateInputs(statuses=_all(), consistency="pass", perf_ok=False, perf_ratio=0.5))
    assert (v.verdict, v.recommended, v.exit_code) == (Verdict.PARTIAL, "base", 3)
    assert "0.50" in v.reasons[0]


def test_candidate_that_misses_a_gate_because_a_step_was_skipped_is_partial() -> None:
    v = decide(GateInputs(statuses=_all(consistency=S), consistency=None, perf_ok=True))
    assert v.verdict is Verdict.PARTIAL and "consistency" in v.reasons[0]


def test_only_retest_gives_exit_4_and_retest_plus_failure_gives_3() -> None:
    v = decide(GateInputs(statuses=_all(), consistency="retest", perf_ok=True))
    assert (v.verdict, v.exit_code, v.retest) == (Verdict.PARTIAL, 4, True)
    v = decide(GateInputs(statuses=_all(), consistency="retest", perf_ok=False, perf_ratio=0.1))
    assert v.exit_code == 3


def test_gates_turned_off_do_not_count() -> None:
    v = decide(
        GateInputs(
            statuses=_all(consistency=S, candidate_bench=S),
            consistency=None,
            perf_ok=None,
            consistency_required=False,
            bench_required=False,
        )
    )
    assert v.verdict is Verdict.PASS


def test_candidate_cannot_serve_is_partial() -> None:
    v = decide(GateInputs(statuses=_all(candidate_serve=F), consistency=None, perf_ok=None))
    assert v.verdict is Verdict.PARTIAL and "cannot serve" in v.reasons[0]


def test_consistency_reasons_name_the_prompt_and_numbers() -> None:
    why = "prompt #3 'Once upon a time,' at token 5: diverged_fail by cross_score: ... 8.000 nats"
    v = decide(
        GateInputs(
            statuses=_all(consistency=F),
            consistency="fail",
            consistency_reasons=[why],
            perf_ok=True,
            perf_ratio=1.0,
        )
    )
    assert v.verdict == Verdict.PARTIAL and v.exit_code == 3
    assert len(v.reasons) == 1 and why in v.reasons[0] and "failed" in v.reasons[0]


def test_inconclusive_consistency_alone_advises_a_retest_with_its_reason() -> None:
    why = "task accuracy: number_sequence ...: inconclusive at n=40; about 300 items would decide it"
    v = decide(
        GateInputs(
            statuses=_all(consistency=F),
            consistency="retest",
            consistency_reasons=[why],
            perf_ok=True,
            perf_ratio=1.0,
        )
    )
    assert v.verdict == Verdict.PARTIAL and v.retest and v.exit_code == 4
    assert "inconclusive" in v.reasons[0] and "300 items" in v.reasons[0]
