"""`run_consistency`: greedy tokens, teacher-forced log-probs and paired task accuracy, ref vs candidate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stackcert.consistency.client import CompletionsClient, NoLogprobs
from stackcert.consistency.options import (
    ConsistencyOptions,
    ConsistencyResult,
    LogprobPhase,
    TokenPhase,
    combine,
)
from stackcert.consistency.phases import Sides, logprob_phase, task_phase, tokens_phase
from stackcert.consistency.tokens import FAILING, PromptComparison
from stackcert.engines.base import ModelRef, Server
from stackcert.errors import EngineError
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.jsonio import envelope, now_iso, write_json_atomic
from stackcert.progress import NullProgress, Progress

STEP = "consistency"


def run_consistency(
    reference: Server,
    candidate: Server,
    model: ModelRef,
    *,
    options: ConsistencyOptions,
    out_dir: Path,
    progress: Progress | None = None,
) -> ConsistencyResult:
    """Compare two running servers of the same model; writes {tokens,logprobs,tasks}.json in out_dir."""
    return asyncio.run(
        _run(
            reference, candidate, model, options=options, out_dir=out_dir, progress=progress or NullProgress()
        )
    )


def _no_logprobs_finding(exc: NoLogprobs, phase: str) -> Finding:
    return Finding(
        step=STEP,
        phase=phase,
        layer=Layer.L5_SERVING,
        component=Component.CLIENT,
        category="no_logprobs",
        signature="server returned no logprobs",
        message=f"{exc.one_line()}; the {phase} comparison cannot be judged",
    )


def _write(out_dir: Path, name: str, payload: dict[str, Any], started: str) -> str:
    path = out_dir / f"{name}.json"
    write_json_atomic(path, envelope(f"consistency.{name}", payload, started=started))
    return str(path)


def _prompt_line(p: PromptComparison) -> str:
    """Prompt, position, tokens, rule and numbers of one failing prompt: what a person can act on."""
    short = p.prompt if len(p.prompt) <= 40 else p.prompt[:37] + "..."
    div = p.divergence
    where = (
        f" at token {div.position} (reference {div.reference_token}, candidate {div.candidate_token})"
        if div
        else ""
    )
    return f"prompt #{p.index} {short!r}{where}: {p.status} by {p.rule}: {p.reason}"


def _gate_finding(phase: str, result: ConsistencyResult) -> Finding | None:
    """A failed or inconclusive comparison is a located L6 finding that names prompts, checks and
    numbers, so the verdict and the report can explain themselves."""
    message: str | None = None
    category = f"{phase}_mismatch"
    if phase == "tokens" and result.tokens and result.tokens.status == "fail" and result.tokens.summary:
        bad = [p for p in result.tokens.prompts if p.status in FAILING]
        message = f"{len(bad)} of {result.tokens.summary.prompts} prompts fail the greedy-token rules: " + (
            "; ".join(_prompt_line(p) for p in bad[:3]) + (f"; … {len(bad) - 3} more" if len(bad) > 3 else "")
        )
    elif phase == "logprobs" and result.logprobs and result.logprobs.status != "pass":
        over = [c for c in result.logprobs.checks if c.decision != "pass"]
        verb = "differ beyond the tolerance" if result.logprobs.status == "fail" else "are inconclusive"
        message = f"teacher-forced log-probs over {result.logprobs.texts} texts {verb}: " + "; ".join(
            c.describe() + (f" ({c.texts_needed} texts would decide it)" if c.texts_needed else "")
            for c in over
        )
        if result.logprobs.status == "retest":
            category = "logprobs_inconclusive"
    elif phase == "tasks" and result.tasks and result.tasks.status != "pass":
        message = "task accuracy: " + "; ".join(
            f"{t.task} {t.reference_accuracy:.3f} → {t.candidate_accuracy:.3f} (n={t.items}, "
            f"{t.counts.ref_only} lost, {t.counts.cand_only} gained): {t.rules.reason}"
            for t in result.tasks.tasks
            if t.status != "pass"
        )
        if result.tasks.status == "retest":
            category = "tasks_inconclusive"
    if message is None:
        return None
    return Finding(
        step=STEP,
        phase=phase,
        layer=Layer.L6_NUMERICS,
        category=category,
        signature=f"consistency:{category}",
        message=message,
    )


async def _run(
    reference: Server,
    candidate: Server,
    model: ModelRef,
    *,
    options: ConsistencyOptions,
    out_dir: Path,
    progress: Progress,
) -> ConsistencyResult:
    result = ConsistencyResult(status="pass", reference=reference.stack.name, candidate=candidate.stack.name)
    opts = options
    async with (
        CompletionsClient(reference.base_url, reference.served_model, timeout_s=opts.timeout_s) as rc,
        CompletionsClient(candidate.base_url, candidate.served_model, timeout_s=opts.timeout_s) as cc,
    ):
        sides = Sides(rc, cc, progress, opts.concurrency)
        for phase in opts.phases:
            started = now_iso()
            try:
                if phase == "tokens":
                    result.tokens = await tokens_phase(sides, model, opts)
                    payload: dict[str, Any] = result.tokens.model_dump(mode="json")
                elif phase == "logprobs":
                    result.logprobs = await logprob_phase(sides, model, opts)
                    payload = result.logprobs.model_dump(mode="json")
                else:
                    result.tasks = await task_phase(sides, model, opts, out_dir)
                    payload = result.tasks.model_dump(mode="json")
                progress.on_finish(phase, str(payload["status"]))
                gate = _gate_finding(phase, result)
                if gate is not None:
                    result.findings.append(gate)
                    payload["findings"] = [gate.model_dump(mode="json")]
            except NoLogprobs as exc:
                finding = _no_logprobs_finding(exc, phase)
                result.findings.append(finding)
                payload = {"status": "fail", "findings": [finding.model_dump(mode="json")]}
                if phase == "tokens":
                    result.tokens = TokenPhase(status="fail")
                elif phase == "logprobs":
                    result.logprobs = LogprobPhase(status="fail")
                progress.on_finish(phase, "fail")
            except EngineError as exc:
                finding = Finding(
                    step=STEP,
                    phase=phase,
                    category="request_failed",
                    component=Component.CLIENT,
                    message=exc.one_line(),
                )
                result.findings.append(finding)
                payload = {"status": "fail", "findings": [finding.model_dump(mode="json")]}
                progress.on_finish(phase, "fail")
            payload = {"reference": result.reference, "candidate": result.candidate, **payload}
            result.files[phase] = _write(out_dir, phase, payload, started)
    statuses = [p.status for p in (result.tokens, result.logprobs, result.tasks) if p is not None]
    # Gate findings mirror a phase status already; any other finding (no log-probs, a failed request)
    # is a failure in its own right.
    statuses += ["fail" for f in result.findings if not f.signature.startswith("consistency:")]
    result.status = combine(statuses)
    return result
