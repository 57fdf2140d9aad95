"""Operator bisection through the vLLM engine, as users run it (server, multiprocessing on).

A probe is one engine start of the candidate with an exclusion list (applied inside the engine
processes by stackcert's vLLM plugin, read back from them), then a few greedy completions judged
against the reference's (:mod:`stackcert.diagnose.answers`). A crash — an operator raising, or a
device fault that takes the CUDA context with it — kills the engine; the next probe is a fresh start
anyway, so a crash costs nothing extra.

Before searching, the **traceback fast path**: the operator named by the deepest operator-library
frame of the candidate's failure. An illegal memory access is reported asynchronously, at a later
synchronisation, so its traceback names no kernel; for such a library (FlagGems) the candidate is
started once more with ``CUDA_LAUNCH_BLOCKING=1`` (a *diagnostic start*, not a probe), whose
traceback stops in the faulting kernel's Python frame. The named operator is then verified like
any guess: excluded (must pass), isolated (only it active: must fail) and re-verified.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from stackcert.config import StackSpec
from stackcert.diagnose import answers as ans
from stackcert.diagnose.bisect import BisectResult, ProbeOutcome, bisect_operators
from stackcert.diagnose.bisect_report import BisectReport, ProbeStart
from stackcert.engines.base import EngineStartError, ModelRef, ServerTimeouts
from stackcert.errors import EngineError
from stackcert.evidence.findings import Component, Finding, Layer, LogExcerpt
from stackcert.evidence.signature import signature
from stackcert.progress import NullProgress, Progress
from stackcert.targets import LOCAL, Target

_OP_IN_MESSAGE = re.compile(r"operator '([A-Za-z0-9_]+)'")
_LIB_FRAME = re.compile(
    r'File "[^"]*?flag_gems/(?:[\w/]*/)?(?:ops|fused|experimental_ops)/(\w+)\.py"(?:, line \d+, in (\w+))?'
)
_ATEN = re.compile(r"aten::([A-Za-z0-9_]+)")
_TB_START = "Traceback (most recent call last):"


def operator_in_text(lines: list[str], active: list[str]) -> str | None:
    """The operator of the deepest library frame in the first traceback that has one, else one named."""
    act = set(active)
    block: list[str] = []
    blocks: list[list[str]] = []
    for line in lines:
        if _TB_START in line:
            block = []
            blocks.append(block)
        block.append(line)
    for tb in blocks:
        found = [m for line in tb for m in [_LIB_FRAME.search(line)] if m]
        frames = []
        for m in found:  # the file's operator, else the function's name
            name = next((n for n in (m.group(1), m.group(2)) if n in act), None)
            if name is not None:
                frames.append(name)
        if frames:
            return frames[-1]
    for line in lines:
        for rx in (_OP_IN_MESSAGE, _ATEN):
            hit = rx.search(line)
            if hit and hit.group(1) in act:
                return hit.group(1)
    return None


def operator_from_findings(findings: list[Finding] | None, active: list[str]) -> str | None:
    """The library operator a list of findings names (their operator field, message or log excerpt)."""
    for f in findings or []:
        if f.operator:
            name = f.operator.removeprefix("aten::").split(".")[0]
            if name in active:
                return name
        lines = [f.message, *(f.excerpt.lines if f.excerpt else [])]
        op = operator_in_text(lines, active)
        if op:
            return op
    return None


def operator_from_log(path: Path | None, active: list[str]) -> str | None:
    """The library operator named by a server log's tracebacks."""
    if path is None or not path.exists():
        return None
    return operator_in_text(path.read_text(encoding="utf-8", errors="replace").splitlines(), active)


def excluding(stack: StackSpec, excluded: list[str], env: dict[str, str] | None = None) -> StackSpec:
    """The stack with these operators added to its exclusion list (and extra environment)."""
    assert stack.operators is not None
    ops = stack.operators.model_copy(
        update={"exclude": list(dict.fromkeys([*stack.operators.exclude, *excluded]))}
    )
    return stack.model_copy(update={"operators": ops, "env": {**stack.env, **(env or {})}})


class EngineProbe:
    """``probe(excluded) -> ProbeOutcome``: one engine start of the candidate per call."""

    def __init__(
        self,
        candidate: StackSpec,
        model: ModelRef,
        *,
        work_dir: Path,
        reference: list[ans.Answer],
        active: list[str],
        tol: float,
        timeouts: ServerTimeouts | None = None,
        max_tokens: int = 8,
        target: Target = LOCAL,
    ) -> None:
        self.candidate = candidate
        self.target = target
        self.model = model
        self.work_dir = work_dir
        self.reference = reference
        self.active = active
        self.tol = tol
        self.timeouts = timeouts or ServerTimeouts()
        self.max_tokens = max_tokens
        self.starts = 0
        self.records: list[dict[str, Any]] = []
        self.failed_logs: list[Path] = []  # server logs of failed starts, newest last

    def start_dir(self, tag: str) -> Path:
        """A fresh folder for one engine start."""
        self.starts += 1
        folder = self.work_dir / f"{self.starts:03d}-{tag}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def __call__(self, excluded: list[str]) -> ProbeOutcome:
        from stackcert.engines import launch_server

        folder = self.start_dir("probe")
        t0 = time.monotonic()
        record: dict[str, Any] = {"dir": folder.name, "excluded": len(excluded)}
        try:
            with launch_server(
                excluding(self.candidate, excluded),
                self.model,
                run_dir=folder,
                timeouts=self.timeouts,
                target=self.target,
            ) as server:
                record["startup_s"] = getattr(getattr(server, "info", None), "startup_s", None)
                got = ans.collect(server, [a.prompt for a in self.reference], max_tokens=self.max_tokens)
            outcome = ans.judge(self.reference, got, tol=self.tol)
        except EngineStartError as err:
            outcome = self._failed_start(err, folder)
        except EngineError as err:  # the engine died while answering
            outcome = ProbeOutcome(
                passed=False,
                category="crash",
                reason=f"engine failed while answering: {err}"[:500],
                operator=operator_from_log(folder / "server.log", self.active),
            )
        record.update(category=outcome.category, seconds=round(time.monotonic() - t0, 2))
        self.records.append(record)
        return outcome

    def _failed_start(self, err: EngineStartError, folder: Path) -> ProbeOutcome:
        if err.log_path is not None:
            self.failed_logs.append(err.log_path)
        head = err.findings[0] if err.findings else None
        if head is not None and head.category == "operators_not_applied":
            return ProbeOutcome(passed=False, category="error", reason=head.message[:500])
        op = operator_from_findings(err.findings, self.active) or operator_from_log(err.log_path, self.active)
        reason = head.located() if head is not None else str(err)
        return ProbeOutcome(passed=False, category="crash", reason=reason[:500], operator=op)

    def diagnostic_start(self, env: dict[str, str]) -> tuple[str | None, float]:
        """Start the full candidate once with extra env (CUDA_LAUNCH_BLOCKING=1): the operator it names."""
        from stackcert.engines import launch_server

        folder = self.start_dir("traceback")
        t0 = time.monotonic()
        op: str | None = None
        try:
            with launch_server(
                excluding(self.candidate, [], env),
                self.model,
                run_dir=folder,
                timeouts=self.timeouts,
                target=self.target,
            ):
                pass
        except EngineStartError as err:
            op = operator_from_log(err.log_path, self.active) or operator_from_findings(
                err.findings, self.active
            )
            if err.log_path is not None:
                self.failed_logs.insert(0, err.log_path)  # the most precise traceback: first
        return op, round(time.monotonic() - t0, 2)


_LIBRARY_COMPONENT = {"flag_gems": Component.FLAG_GEMS, "fault_ops": Component.OPS_FIXTURE}


def frame_excerpt(logs: list[Path], op: str) -> LogExcerpt | None:
    """The traceback lines around the library frame of ``op`` (and the error) in the first log with it."""
    frame = re.compile(
        rf'File "[^"]*flag_gems/(?:[\w/]*/)?(?:ops|fused|experimental_ops)/{re.escape(op)}\.py"'
    )
    named = re.compile(rf"operator '{re.escape(op)}'")
    for path in logs:
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        hits = [i for i, line in enumerate(lines) if frame.search(line)] or [
            i for i, line in enumerate(lines) if named.search(line)
        ]
        if hits:
            first = max(0, hits[0] - 4)
            last = min(len(lines), hits[-1] + 8)
            return LogExcerpt(path=str(path), first_line=first + 1, lines=lines[first:last])
    return None


def culprit_finding(result: BisectResult, library: str, logs: list[Path]) -> Finding | None:
    """A located finding for a verified culprit: layer L3, the library's component, its frame."""
    if result.status != "found" or not result.verified or not result.culprits:
        return None
    op = result.exclude[0] if result.exclude else result.culprits[0]
    alone = next((r for r in result.log if r.purpose.startswith("isolation")), None)
    how = f"{alone.category}: {alone.reason}" if alone is not None else "fails"
    message = (
        f"operator '{op}' of {library} breaks the candidate: with it excluded the engine passes; "
        f"with only it active it fails ({how})"
    )[:800]
    return Finding(
        step="bisect",
        phase="operators",
        layer=Layer.L3_KERNELS,
        component=_LIBRARY_COMPONENT.get(library, Component.UNKNOWN),
        category="operator_culprit",
        signature=signature("operator_culprit", None, f"{library} {op}"),
        message=message,
        operator=op,
        excerpt=frame_excerpt(logs, op),
    )


def reference_answers(
    reference: StackSpec,
    model: ModelRef,
    *,
    run_dir: Path,
    timeouts: ServerTimeouts | None = None,
    target: Target = LOCAL,
) -> list[ans.Answer]:
    """Start the reference once (on the target) and collect its answers (when the pipeline kept none)."""
    from stackcert.engines import launch_server

    with launch_server(reference, model, run_dir=run_dir, timeouts=timeouts, target=target) as server:
        return ans.collect(server)


def active_operators(candidate: StackSpec, candidate_dir: Path | None) -> list[str]:
    """The operators the candidate's engine process registered (its read-back), else the library's."""
    import json

    if candidate_dir is not None and (candidate_dir / "effective_ops.json").exists():
        data = json.loads((candidate_dir / "effective_ops.json").read_text(encoding="utf-8"))
        eff = data.get("effective")
        if isinstance(eff, list) and eff:
            return [str(x) for x in eff]
    from stackcert.engines import operators

    assert candidate.operators is not None
    excluded = set(candidate.operators.exclude)
    names = candidate.operators.include or operators.known_operators(candidate.operators.library)
    return [n for n in names if n not in excluded]


def run_vllm_bisect(
    reference: StackSpec,
    candidate: StackSpec,
    model: ModelRef,
    *,
    run_dir: Path,
    findings: list[Finding] | None = None,
    reference_answers_: list[ans.Answer] | None = None,
    candidate_dir: Path | None = None,
    logprob_tol: float | None = None,
    max_probes: int | None = None,
    timeouts: ServerTimeouts | None = None,
    blocking_diagnosis: bool | None = None,
    progress: Progress | None = None,
    target: Target = LOCAL,
) -> BisectReport:
    """Bisect a vLLM candidate's operators by engine starts (the caller writes bisect.json)."""
    progress = progress or NullProgress()
    assert candidate.operators is not None
    started = time.monotonic()
    work = run_dir / "bisect"
    timing: dict[str, float] = {}
    ref = reference_answers_
    if ref is None:
        t0 = time.monotonic()
        ref = reference_answers(
            reference, model, run_dir=work / "reference", timeouts=timeouts, target=target
        )
        timing["reference_start_s"] = round(time.monotonic() - t0, 2)
    active = active_operators(candidate, candidate_dir)
    tol = logprob_tol if logprob_tol is not None else 0.5
    probe = EngineProbe(
        candidate,
        model,
        work_dir=work / "starts",
        reference=ref,
        active=active,
        tol=tol,
        timeouts=timeouts,
        target=target,
    )
    progress.on_start("bisect")
    # An asynchronous device fault is reported by whichever later operator synchronises, so the
    # failure's own frames may name an innocent one: the blocking start comes first for such a library.
    blocking = (
        blocking_diagnosis if blocking_diagnosis is not None else candidate.operators.library == "flag_gems"
    )
    traceback_op: str | None = None
    source: str | None = None
    if blocking:
        traceback_op, timing["traceback_start_s"] = probe.diagnostic_start({"CUDA_LAUNCH_BLOCKING": "1"})
        source = "CUDA_LAUNCH_BLOCKING=1 start" if traceback_op else None
    if traceback_op is None:
        traceback_op = operator_from_findings(findings, active)
        source = "candidate failure" if traceback_op else None

    def logged(excluded: list[str]) -> ProbeOutcome:
        outcome = probe(excluded)
        progress.on_advance("bisect", 1.0)
        progress.on_message("bisect", f"excluded {len(excluded)}/{len(active)}: {outcome.category}")
        return outcome

    result = bisect_operators(
        active, logged, traceback_op=traceback_op, max_probes=max_probes, candidate=candidate
    )
    progress.on_finish("bisect", result.status)
    cand_log = candidate_dir / "server.log" if candidate_dir is not None else None
    logs = [*probe.failed_logs, *([cand_log] if cand_log is not None else [])]
    finding = culprit_finding(result, candidate.operators.library, logs)
    return BisectReport(
        engine="vllm",
        reference=reference.name,
        candidate=candidate.name,
        library=candidate.operators.library,
        model=str(model.path),
        logprob_tol=tol,
        active_count=len(active),
        traceback_operator=traceback_op,
        traceback_source=source,
        engine_starts=probe.starts + (1 if reference_answers_ is None else 0),
        starts=[ProbeStart.model_validate(r) for r in probe.records],
        timing=timing,
        reference_tokens=[a.tokens for a in ref],
        duration_s=round(time.monotonic() - started, 2),
        result=result,
        findings=[finding] if finding is not None else [],
    )
