"""`verify`: smoke the reference and the candidate stack (always both), then diff the two runs.

The export follows the report schema of FlagRelease's model-verify skill (run A without the
multi-chip components, run B with them, diff_analysis).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from stackcert.config import StackSpec
from stackcert.diagnose.diff import Conclusion, DiffAnalysis, diff_runs
from stackcert.engines.base import ModelRef, Server
from stackcert.errors import ExitCode, UsageError
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.jsonio import envelope, now_iso, write_json_atomic
from stackcert.paths import stack_folder
from stackcert.progress import NullProgress, Progress
from stackcert.smoke.models import PhaseResult, SmokeOptions, SmokeResult
from stackcert.smoke.runner import run_smoke
from stackcert.status import Status

# stackcert component names -> the names FlagRelease's model-verify skill reports.
FLAGRELEASE_COMPONENT = {
    Component.FLAG_GEMS.value: "FlagGems",
    Component.TRITON.value: "FlagTree",
    Component.FLAGCX.value: "FlagCX",
    Component.VLLM_PLUGIN_FL.value: "plugin",
}


class VerifyResult(BaseModel):
    """Both smoke runs, their diff and the overall PASS / PARTIAL / FAIL of a verify."""

    status: str = Field(
        ..., description="PASS (both pass) | PARTIAL (reference only) | FAIL (reference fails)"
    )
    model: str
    reference: SmokeResult
    candidate: SmokeResult
    diff: DiffAnalysis
    effective_ops: list[str] | None = Field(
        None, description="the candidate's replaced operators, if reported"
    )

    @property
    def exit_code(self) -> ExitCode:
        """The CLI exit code of the status: PASS 0, PARTIAL 3, FAIL 1."""
        return {"PASS": ExitCode.PASS, "PARTIAL": ExitCode.PARTIAL}.get(self.status, ExitCode.FAIL)


def _guarded(
    stack: StackSpec,
    model: ModelRef,
    run_dir: Path,
    server: Server | None,
    options: SmokeOptions,
    progress: Progress,
) -> SmokeResult:
    """One smoke run that can never stop the other: an unforeseen error becomes a crashed result."""
    try:
        folder = stack_folder(run_dir, stack.name)
        result = run_smoke(stack, model, folder=folder, server=server, options=options, progress=progress)
        write_json_atomic(folder / "smoke.json", envelope("smoke", result.model_dump(mode="json")))
        return result
    except UsageError:
        raise
    except Exception as exc:
        finding = Finding(
            step="smoke",
            phase="serve",
            layer=Layer.L5_SERVING,
            component=Component.STACKCERT,
            category="internal_error",
            signature=f"internal_error:{type(exc).__name__}",
            message=f"{type(exc).__name__}: {exc}",
        )
        phase = PhaseResult(status=Status.CRASH, reason="".join(traceback.format_exception_only(exc)).strip())
        return SmokeResult(
            status=Status.CRASH,
            stack=stack.name,
            engine=stack.engine,
            model=model.served_name,
            stack_components=list(stack.components),
            phase_b_serve=phase,
            findings=[finding],
        )


def verify_status(diff: DiffAnalysis) -> str:
    """PASS when both stacks pass, PARTIAL when only the reference does, FAIL otherwise."""
    if diff.conclusion == Conclusion.BOTH_PASS:
        return "PASS"
    return "PARTIAL" if diff.reference_status == Status.PASS else "FAIL"


def run_verify(
    reference: StackSpec,
    candidate: StackSpec,
    model: ModelRef,
    *,
    run_dir: Path,
    options: SmokeOptions | None = None,
    servers: dict[str, Server] | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Smoke both stacks (the candidate runs whatever the reference did), diff, write verify.json."""
    if reference.name == candidate.name:
        raise UsageError(
            f"reference and candidate are the same stack '{reference.name}'",
            where="--reference/--candidate",
            fix="name two different stacks",
        )
    options = options or SmokeOptions()
    progress = progress or NullProgress()
    servers = servers or {}
    began = now_iso()
    results = {}
    for role, stack in (("reference", reference), ("candidate", candidate)):
        progress.on_message("verify", f"{role}: smoke '{stack.name}'")
        results[role] = _guarded(stack, model, run_dir, servers.get(stack.name), options, progress)
    diff = diff_runs(results["reference"], results["candidate"])
    result = VerifyResult(
        status=verify_status(diff),
        model=model.served_name,
        reference=results["reference"],
        candidate=results["candidate"],
        diff=diff,
        effective_ops=results["candidate"].effective_ops,
    )
    write_json_atomic(
        run_dir / "verify.json", envelope("verify", result.model_dump(mode="json"), started=began)
    )
    return result


def _flags(run: SmokeResult) -> dict[str, str]:
    flags = dict(run.stack_env)
    flags.update({name: "unset" for name in run.stack_unset_env})
    return flags


def _run_entry(run: SmokeResult) -> dict[str, Any]:
    return {
        "stack": run.stack,
        "flags": _flags(run),
        "phase_a_offline": run.phase_a_offline.status.value.upper(),
        "phase_b_serve": run.phase_b_serve.status.value.upper(),
        "output_sample": run.output_sample,
        "errors": [f.located() for f in run.findings],
    }


def flagrelease_export(result: VerifyResult) -> dict[str, Any]:
    """The report in the schema of FlagRelease's model-verify skill."""
    diff = result.diff
    conclusion = "MULTICHIP_ERROR" if diff.conclusion == Conclusion.CANDIDATE_ERROR else diff.conclusion.value
    run_b = _run_entry(result.candidate)
    run_b["skipped"] = result.candidate.status == Status.SKIPPED
    if result.effective_ops is not None:
        run_b["effective_ops"] = result.effective_ops
    component = FLAGRELEASE_COMPONENT.get(diff.component, diff.component) if diff.component else None
    return {
        "status": result.status,
        "stage": "model-verify",
        "model": result.model,
        "run_a_without_multichip": _run_entry(result.reference),
        "run_b_with_multichip": run_b,
        "diff_analysis": {
            "conclusion": conclusion,
            "detail": diff.detail,
            "multichip_component": component,
            "recommended_stack": diff.recommended_stack.value,
        },
    }
