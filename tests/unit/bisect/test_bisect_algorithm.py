"""The bisection algorithm against synthetic probe functions (no engine)."""

from __future__ import annotations

import math
import random

import pytest

from stackcert.config import OperatorSelection, StackSpec
from stackcert.diagnose.bisect import ProbeOutcome, bisect_operators


def ops(n: int) -> list[str]:
    return [f"op{i:02d}" for i in range(n)]


class Counting:
    """A probe that fails while any failing rule is fully active."""

    def __init__(self, all_ops: list[str], rules: list[set[str]]) -> None:
        self.all_ops = all_ops
        self.rules = rules
        self.calls: list[list[str]] = []

    def __call__(self, excluded: list[str]) -> ProbeOutcome:
        self.calls.append(list(excluded))
        active = set(self.all_ops) - set(excluded)
        for rule in self.rules:
            if rule <= active:
                return ProbeOutcome(passed=False, category="crash", reason=f"{sorted(rule)} active")
        return ProbeOutcome(passed=True, category="pass")


@pytest.mark.parametrize("n", [8, 32, 64])
def test_single_culprit_every_position_within_log_budget(n: int) -> None:
    names = ops(n)
    limit = math.ceil(math.log2(n)) + 2
    worst = 0
    for culprit in names:
        probe = Counting(names, [{culprit}])
        res = bisect_operators(names, probe)
        assert res.status == "found", res.message
        assert res.culprits == [culprit]
        assert res.exclude == [culprit]
        assert res.verified and not res.interaction
        assert res.probes_used == len(probe.calls) == len(res.log)
        worst = max(worst, res.probes_used)
    assert worst <= limit


def test_traceback_fast_path_uses_two_probes() -> None:
    names = ops(32)
    probe = Counting(names, [{"op17"}])
    res = bisect_operators(names, probe, traceback_op="op17")
    assert res.status == "found" and res.culprits == ["op17"]
    assert res.probes_used == 3  # fast path, final verification, isolation
    assert res.log[0].purpose == "traceback fast path"


def test_wrong_traceback_hint_falls_back_to_search() -> None:
    names = ops(16)
    probe = Counting(names, [{"op03"}])
    res = bisect_operators(names, probe, traceback_op="op09")
    assert res.status == "found" and res.culprits == ["op03"]


@pytest.mark.parametrize("pair", [("op01", "op02"), ("op00", "op31"), ("op05", "op20")])
def test_two_independent_culprits(pair: tuple[str, str]) -> None:
    names = ops(32)
    probe = Counting(names, [{pair[0]}, {pair[1]}])
    res = bisect_operators(names, probe)
    assert res.status == "found", res.message
    assert sorted(res.exclude) == sorted(pair)
    assert sorted(res.culprits) == sorted(pair)
    assert res.verified and not res.interaction
    assert res.probes_used <= 30


def test_combination_culprit_fails_only_when_both_active() -> None:
    names = ops(16)
    probe = Counting(names, [{"op04", "op11"}])
    res = bisect_operators(names, probe)
    assert res.status == "found", res.message
    assert res.interaction
    assert sorted(res.culprits) == ["op04", "op11"]
    assert len(res.exclude) == 1 and res.exclude[0] in {"op04", "op11"}
    assert res.verified


def test_no_culprit_says_so() -> None:
    names = ops(8)
    res = bisect_operators(names, Counting(names, []))
    assert res.status == "no_failure"
    assert res.culprits == [] and not res.verified


def test_failure_outside_the_library() -> None:
    names = ops(8)

    def always_fails(excluded: list[str]) -> ProbeOutcome:
        return ProbeOutcome(passed=False, category="crash", reason="engine broken")

    res = bisect_operators(names, always_fails)
    assert res.status == "not_in_library"
    assert res.culprits == []


def test_flaky_probe_is_reported_not_fixed() -> None:
    """The final uncached re-run disagrees with the memoised pass: inconsistent, not verified."""
    names = ops(8)
    seen: dict[frozenset[str], int] = {}

    def flaky(excluded: list[str]) -> ProbeOutcome:
        key = frozenset(excluded)
        seen[key] = seen.get(key, 0) + 1
        if "op06" in key and seen[key] == 1:
            return ProbeOutcome(passed=True)
        return ProbeOutcome(passed=False, category="mismatch", reason="tokens differ")

    res = bisect_operators(names, flaky)
    assert res.status == "inconsistent"
    assert not res.verified and res.candidate is None


def test_random_flaky_probe_never_claims_unverified_fix() -> None:
    names = ops(16)
    rng = random.Random(7)
    for _ in range(20):

        def noisy(excluded: list[str]) -> ProbeOutcome:
            return ProbeOutcome(passed=rng.random() < 0.5)

        res = bisect_operators(names, noisy)
        finals = [r for r in res.log if r.purpose == "final verification"]
        if res.status == "found":
            assert res.verified and finals and finals[-1].passed
            assert finals[-1].excluded == [o for o in names if o in res.exclude]
        else:
            assert not res.verified and res.candidate is None


def test_budget_is_respected() -> None:
    names = ops(64)
    probe = Counting(names, [{f"op{i:02d}"} for i in range(0, 64, 5)])
    res = bisect_operators(names, probe, max_probes=6)
    assert res.status == "budget_exhausted"
    assert res.probes_used == 6


def test_probe_exception_counts_as_failure() -> None:
    names = ops(8)

    def broken(excluded: list[str]) -> ProbeOutcome:
        if "op02" not in excluded:
            raise RuntimeError("worker died")
        return ProbeOutcome(passed=True)

    res = bisect_operators(names, broken)
    assert res.status == "found" and res.culprits == ["op02"]
    assert any(r.category == "error" and "worker died" in r.reason for r in res.log)


def test_candidate_stack_gets_the_exclusion() -> None:
    names = ops(8)
    stack = StackSpec(
        name="faulty",
        engine="transformers",
        operators=OperatorSelection(library="fault_ops", exclude=["op07"]),
    )
    res = bisect_operators(names, Counting(names, [{"op03"}]), candidate=stack)
    assert res.candidate is not None
    assert res.candidate.operators is not None
    assert res.candidate.operators.exclude == ["op03", "op07"]
    assert res.candidate.name == "faulty-bisected"
