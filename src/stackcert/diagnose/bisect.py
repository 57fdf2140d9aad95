"""Operator bisection: which operators of a library must be excluded for the candidate to pass.

A pure algorithm over a probe function: ``probe(excluded_ops)`` runs the candidate with those
operators excluded and says pass or fail. Numerical faults are failures too; judging them is the
probe's job (see :mod:`stackcert.diagnose.probe`).

The search, cheapest first:

1. Traceback fast path: when the failure names an operator of the library, exclude it (1 probe).
2. Optimistic halving, which assumes one culprit: exclude half of the suspects; if that passes
   the culprit is in that half, otherwise in the other (about log2(n) probes).
3. When the answer of 1 or 2 does not verify (several culprits that all need excluding), a
   QuickXplain-style divide and conquer finds a minimal exclusion set under the assumption that
   excluding more never makes a run fail.

Each answer is isolated (a run with only the suspects active) and then re-verified (the
recommended exclusion list run once more, uncached). When the suspects alone do not fail, the
failure is an interaction, and the same divide and conquer finds the partner operators that must be
active too. One culprit among n operators costs at most ceil(log2 n) + 2 probes.

Flaky probes: each distinct exclusion set is probed once (results are memoised). The final
verification runs uncached; when it disagrees with the memoised result, the result is
``inconsistent`` and ``verified`` is false, so a flaky stack is reported, never silently "fixed".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Literal

from pydantic import BaseModel, Field

from stackcert.config import StackSpec


class ProbeOutcome(BaseModel):
    """What one probe run said: passed, the failure category and reason, an operator named by a traceback."""

    passed: bool
    category: str = Field("", description="pass | crash | nan | mismatch | drift | timeout | error")
    reason: str = ""
    operator: str | None = Field(None, description="operator named by a traceback, when one is")
    metrics: dict[str, float] = Field(default_factory=dict)


class ProbeRecord(BaseModel):
    """One probe of a bisection: the operators excluded, how many stayed active, why it ran, its outcome."""

    index: int
    excluded: list[str]
    active_count: int
    purpose: str
    passed: bool
    category: str = ""
    reason: str = ""
    duration_s: float = 0.0


BisectStatus = Literal["found", "no_failure", "not_in_library", "inconsistent", "budget_exhausted"]


class BisectResult(BaseModel):
    """A bisection's answer: the culprit operators, the minimal exclusion, whether verified, the probe log."""

    status: BisectStatus
    message: str
    active_ops: list[str]
    culprits: list[str] = Field(default_factory=list, description="operators involved in the failure")
    exclude: list[str] = Field(default_factory=list, description="minimal exclusion that makes the run pass")
    interaction: bool = Field(False, description="the culprits fail only together")
    verified: bool = Field(False, description="the recommended exclusion passed a final, uncached run")
    probes_used: int = 0
    probe_budget: int = 0
    log: list[ProbeRecord] = Field(default_factory=list)
    candidate: StackSpec | None = Field(None, description="the candidate with the exclusion applied")


Probe = Callable[[list[str]], ProbeOutcome]


class _BudgetExhausted(Exception):
    pass


class _Search:
    """Memoised probing with a budget and a log."""

    def __init__(self, ops: list[str], probe: Probe, max_probes: int) -> None:
        self.ops = ops
        self.probe = probe
        self.max_probes = max_probes
        self.cache: dict[frozenset[str], ProbeOutcome] = {}
        self.log: list[ProbeRecord] = []

    def run(self, excluded: Iterable[str], purpose: str, *, cached: bool = True) -> ProbeOutcome:
        key = frozenset(excluded)
        if cached and key in self.cache:
            return self.cache[key]
        if len(self.log) >= self.max_probes:
            raise _BudgetExhausted
        ordered = [o for o in self.ops if o in key]
        started = time.monotonic()
        try:
            outcome = self.probe(ordered)
        except Exception as exc:  # a probe that breaks counts as a failed run, with the reason
            outcome = ProbeOutcome(passed=False, category="error", reason=f"{type(exc).__name__}: {exc}")
        self.log.append(
            ProbeRecord(
                index=len(self.log) + 1,
                excluded=ordered,
                active_count=len(self.ops) - len(ordered),
                purpose=purpose,
                passed=outcome.passed,
                category=outcome.category or ("pass" if outcome.passed else "fail"),
                reason=outcome.reason,
                duration_s=round(time.monotonic() - started, 3),
            )
        )
        self.cache.setdefault(key, outcome)
        return outcome

    def passes(self, excluded: Iterable[str], purpose: str) -> bool:
        return self.run(excluded, purpose).passed

    def only_active(self, active: Iterable[str]) -> frozenset[str]:
        keep = set(active)
        return frozenset(o for o in self.ops if o not in keep)

    def any_failure_seen(self) -> bool:
        return any(not o.passed for o in self.cache.values())

    def halve(self, suspects: list[str]) -> list[str]:
        """Assume one culprit; each probe excludes half of the suspects."""
        while len(suspects) > 1:
            half = suspects[: len(suspects) // 2]
            suspects = half if self.passes(half, "halving") else suspects[len(half) :]
        return suspects

    def minimal(self, base: frozenset[str], xs: list[str], ok: Callable[[frozenset[str]], bool]) -> list[str]:
        """QuickXplain: a minimal M of xs with ok(base | M), given ok(base | xs) and not ok(base)."""
        if len(xs) <= 1:
            return list(xs)
        x1, x2 = xs[: len(xs) // 2], xs[len(xs) // 2 :]
        if ok(base | set(x1)):
            return self.minimal(base, x1, ok)
        if ok(base | set(x2)):
            return self.minimal(base, x2, ok)
        m1 = self.minimal(base | set(x2), x1, ok)
        m2 = self.minimal(base | set(m1), x2, ok)
        return m1 + m2


def default_budget(n: int) -> int:
    """The probe budget for n operators: 4·⌈log2 n⌉ + 8."""
    return 4 * max(1, math.ceil(math.log2(max(n, 2)))) + 8


def bisect_operators(
    active_ops: list[str],
    probe: Probe,
    *,
    traceback_op: str | None = None,
    max_probes: int | None = None,
    candidate: StackSpec | None = None,
) -> BisectResult:
    """Find the operators whose exclusion makes the candidate pass (see the module docstring)."""
    ops = list(dict.fromkeys(active_ops))
    budget = max_probes if max_probes is not None else default_budget(len(ops))
    s = _Search(ops, probe, budget)

    def result(status: BisectStatus, message: str, **kw: object) -> BisectResult:
        res = BisectResult(
            status=status,
            message=message,
            active_ops=ops,
            probes_used=len(s.log),
            probe_budget=budget,
            log=s.log,
            **kw,
        )
        if res.verified and candidate is not None:
            res.candidate = with_exclusion(candidate, res.exclude)
        return res

    try:
        if not ops:
            return result("no_failure", "the candidate has no active operators to bisect")
        exclude: list[str] = []
        if (
            traceback_op is not None
            and traceback_op in ops
            and s.passes([traceback_op], "traceback fast path")
        ):
            exclude = [traceback_op]
        if not exclude:
            exclude = s.halve(ops)
        while True:
            seen = s.cache.get(frozenset(exclude))
            known_pass = seen is not None and seen.passed
            alone = s.run(s.only_active(exclude), "isolation: only the suspects active")
            # Re-verify once, uncached: a flaky stack must not look fixed.
            final = s.run(exclude, "final verification", cached=False)
            if final.passed:
                break
            if known_pass:
                return result(
                    "inconsistent",
                    f"excluding {exclude} passed before but failed on the final run ({final.reason}): "
                    "the failure is not deterministic",
                    exclude=exclude,
                    culprits=exclude,
                )
            # The one-culprit guess was wrong: several operators need excluding.
            if not s.passes(ops, "all excluded"):
                return result(
                    "not_in_library",
                    "the run fails even with every operator of the library excluded: "
                    "the failure is not in the operator library",
                )
            if s.passes([], "baseline"):
                return result("no_failure", "the candidate passes with no operator excluded")
            exclude = s.minimal(frozenset(), ops, lambda e: s.passes(e, "divide and conquer"))
        if not alone.passed:
            return result(
                "found",
                f"culprit operator(s): {', '.join(exclude)}",
                culprits=exclude,
                exclude=exclude,
                verified=True,
            )
        if not s.any_failure_seen() and s.passes([], "baseline"):
            return result("no_failure", "the candidate passes with no operator excluded")
        partners = _partners(s, exclude)
        culprits = exclude + [p for p in partners if p not in exclude]
        return result(
            "found",
            f"operators {', '.join(culprits)} fail only together; excluding {', '.join(exclude)} is enough",
            culprits=culprits,
            exclude=exclude,
            interaction=True,
            verified=True,
        )
    except _BudgetExhausted:
        return result("budget_exhausted", f"stopped after the probe budget of {budget} probes")


def _partners(s: _Search, exclude: list[str]) -> list[str]:
    """Operators that must be active together with ``exclude`` for the run to fail."""
    others = [o for o in s.ops if o not in exclude]

    def fails_with(active: frozenset[str]) -> bool:
        return not s.passes(s.only_active(set(exclude) | active), "interaction partners")

    return s.minimal(frozenset(), others, fails_with)


def with_exclusion(stack: StackSpec, exclude: list[str]) -> StackSpec:
    """The stack with these operators added to its exclusion list."""
    if stack.operators is None:
        return stack
    ops = stack.operators.model_copy(update={"exclude": sorted(set(stack.operators.exclude) | set(exclude))})
    return stack.model_copy(update={"name": f"{stack.name}-bisected", "operators": ops})
