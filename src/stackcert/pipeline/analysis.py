"""Compare (A/B diff of the smoke runs, performance ratio, consistency status) and bisect."""

from __future__ import annotations

import json
from typing import Any

from stackcert.pipeline.libs import NotAvailable, Outcome, dump, lib, lib_first
from stackcert.pipeline.steps import OPERATOR_COMPONENTS, RunContext
from stackcert.status import Status


def _smoke(ctx: RunContext, role: str) -> Any:
    data = ctx.result(f"{role}.smoke")
    if not data:
        return None
    return lib("stackcert.smoke", "SmokeResult").model_validate(data)


def _bench(ctx: RunContext, role: str) -> Any:
    data = ctx.result(f"{role}.bench")
    if not data:
        return None
    try:
        cls = lib_first(("stackcert.bench", "BenchResult"), ("stackcert.bench.records", "BenchResult"))
        return cls.model_validate(data)
    except NotAvailable:
        return data


def perf_ratio_of(perf: dict[str, Any]) -> float | None:
    """The candidate/reference throughput ratio from compare_bench's result (its key names vary)."""
    for key in ("ratio", "throughput_ratio", "output_throughput_ratio", "min_ratio", "worst_ratio"):
        value = perf.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def compare_step(ctx: RunContext) -> Outcome:
    payload: dict[str, Any] = {}
    notes: list[str] = []
    ref_smoke, cand_smoke = _smoke_pair(ctx, notes)
    if ref_smoke is not None and cand_smoke is not None:
        try:
            diff = lib("stackcert.diagnose.diff", "diff_runs")(ref_smoke, cand_smoke)
            payload["diff"] = dump(diff)
        except NotAvailable as exc:
            notes.append(str(exc))
    perf_ok: bool | None = None
    ratio: float | None = None
    ref_bench, cand_bench = _bench(ctx, "reference"), _bench(ctx, "candidate")
    if ref_bench is not None and cand_bench is not None:
        try:
            compare = lib_first(
                ("stackcert.bench", "compare_bench"), ("stackcert.bench.compare", "compare_bench")
            )
            perf = dump(compare(ref_bench, cand_bench, threshold=ctx.config.gates.perf_ratio))
            payload["perf"] = perf
            ratio = perf_ratio_of(perf)
            ok = perf.get("ok", perf.get("passed", perf.get("pass")))
            if isinstance(ok, bool):
                perf_ok = ok
            elif ratio is not None:
                perf_ok = ratio >= ctx.config.gates.perf_ratio
        except NotAvailable as exc:
            notes.append(str(exc))
    else:
        notes.append("no benchmark pair to compare")
    cons = ctx.result("consistency")
    consistency = str(cons.get("status")).lower() if cons and cons.get("status") is not None else None
    payload.update(perf_ok=perf_ok, perf_ratio=ratio, consistency=consistency, notes=notes)
    problems = []
    if payload.get("diff", {}).get("conclusion") not in (None, "BOTH_PASS"):
        problems.append(str(payload["diff"].get("detail")))
    if perf_ok is False:
        problems.append(
            f"throughput ratio {ratio if ratio is not None else '?'} < {ctx.config.gates.perf_ratio}"
        )
    if not payload.get("diff") and perf_ok is None:
        return Outcome(
            status=Status.SKIPPED, reason="; ".join(notes) or "nothing to compare", payload=payload
        )
    status = Status.FAIL if problems else Status.PASS
    return Outcome(status=status, reason="; ".join(problems), payload=payload)


def _smoke_pair(ctx: RunContext, notes: list[str]) -> tuple[Any, Any]:
    try:
        return _smoke(ctx, "reference"), _smoke(ctx, "candidate")
    except NotAvailable as exc:
        notes.append(str(exc))
        return None, None


def bisect_reason(ctx: RunContext) -> str | None:
    """None when a bisection is warranted, else why not."""
    led = ctx.ledger
    if led.status("reference.serve") is not Status.PASS or led.status("reference.smoke") is not Status.PASS:
        return "not needed: the reference stack does not pass"
    cand_bad = (
        led.status("candidate.serve").bad
        or led.status("candidate.smoke").bad
        or (led.status("consistency").bad and _consistency_failed(ctx))
    )
    if not cand_bad:
        return "not needed: the candidate does not fail"
    if ctx.stack("candidate").engine == "vllm" and not _starts_or_answers_wrong(ctx):
        # Each vLLM probe is an engine start, judged on a few greedy answers: it cannot see a
        # statistical consistency difference, and a search would cost ~log2(n) starts for nothing.
        return (
            "not run: the vLLM candidate serves and passes smoke; a consistency-only failure is not "
            "bisected by engine starts (use stackcert bisect with a tolerance)"
        )
    compare = ctx.result("compare") or {}
    component = (compare.get("diff") or {}).get("component")
    stack = ctx.stack("candidate")
    if stack.operators is None:
        return "not possible: the candidate selects no operator library"
    ladder = ctx.result("ladder") or {}
    named = ladder.get("component")
    if ladder.get("failing_level") and named not in LIBRARY_COMPONENTS:
        return f"not needed: the isolation ladder names {named or 'no component'}, not the operator library"
    if named in LIBRARY_COMPONENTS:
        return None
    if component in OPERATOR_COMPONENTS or component is None:
        return None
    if stack.engine == "vllm" and _device_fault(ctx):
        return None  # an asynchronous device fault names no kernel: the operators are suspects
    return f"not needed: the failure is not in an operator library (component {component or 'unknown'})"


def _consistency_failed(ctx: RunContext) -> bool:
    """A consistency step that *failed*, not one that was inconclusive (nothing to bisect there)."""
    cons = ctx.result("consistency") or {}
    return str(cons.get("status", "fail")).lower() != "retest"


# What an operator exclusion list can fix (the plugin's own out-of-tree ops are not in it).
LIBRARY_COMPONENTS = {"flag_gems", "triton", "stackcert_fault_ops"}


def _device_fault(ctx: RunContext) -> bool:
    """The candidate's failure is a crash of the engine or device (not a bad argument, model or port)."""
    faults = {"device_error", "segfault", "crash", "kernel_error", "exited", "compile_error"}
    return any(f.category in faults for f in _candidate_findings(ctx))


def _starts_or_answers_wrong(ctx: RunContext) -> bool:
    """The candidate did not start, or its smoke test failed (what an engine-start probe can see)."""
    return ctx.ledger.status("candidate.serve").bad or ctx.ledger.status("candidate.smoke").bad


REFERENCE_ANSWERS = "bisect/reference-answers.json"


def keep_reference_answers(ctx: RunContext) -> None:
    """While the reference still serves: keep its probe answers for a vLLM bisection (saves a start)."""
    cand = ctx.stack("candidate")
    wanted = cand.operators is not None or len(ctx.config.levels) > 2
    if cand.engine != "vllm" or not wanted or not ctx.config.phases.bisect.enabled:
        return
    if not _starts_or_answers_wrong(ctx) and len(ctx.config.levels) <= 2:
        return
    server = ctx.pool.running(ctx.stack("reference").name)
    if server is None:
        return
    from stackcert.diagnose import answers

    got = answers.collect(server)
    path = ctx.run_dir / REFERENCE_ANSWERS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([a.model_dump() for a in got], indent=2), encoding="utf-8")


def _kept_answers(ctx: RunContext) -> list[Any] | None:
    from stackcert.diagnose.answers import Answer

    path = ctx.run_dir / REFERENCE_ANSWERS
    if not path.exists():
        return None
    return [Answer.model_validate(a) for a in json.loads(path.read_text(encoding="utf-8"))]


def _vllm_bisect(ctx: RunContext) -> Outcome:
    from stackcert.diagnose.vllm_probe import run_vllm_bisect

    cand = ctx.stack("candidate")
    result = run_vllm_bisect(
        ctx.stack("reference"),
        cand,
        ctx.need_model(),
        run_dir=ctx.run_dir,
        findings=_candidate_findings(ctx),
        reference_answers_=_kept_answers(ctx),
        candidate_dir=ctx.run_dir / "stacks" / cand.name,
        progress=ctx.progress,
    )
    data = json.loads((ctx.run_dir / "bisect.json").read_text(encoding="utf-8"))
    from stackcert.evidence.findings import Finding

    findings = [Finding.model_validate(f) for f in data.get("findings", [])]
    payload = {k: v for k, v in data.items() if k not in ("schema_version", "kind")}
    reason = f"culprit: {result.culprits}" if result.culprits else result.message
    return Outcome(status=Status.PASS, reason=reason, payload=payload, findings=findings)


def bisect_step(ctx: RunContext) -> Outcome:
    why_not = bisect_reason(ctx)
    if why_not:
        return Outcome(status=Status.SKIPPED, reason=why_not)
    if ctx.stack("candidate").engine == "vllm":
        return _vllm_bisect(ctx)
    run_bisect = lib_first(
        ("stackcert.diagnose.bisect", "run_bisect"), ("stackcert.diagnose.probe", "run_bisect")
    )
    findings = _candidate_findings(ctx)
    from stackcert.consistency.tolerance import ToleranceSettings, probe_tolerance

    tolerance = ToleranceSettings.model_validate(
        {**ctx.config.phases.consistency.options.get("tolerance", {}), **ctx.config.gates.consistency}
    )
    result = run_bisect(
        ctx.stack("reference"),
        ctx.stack("candidate"),
        ctx.need_model(),
        run_dir=ctx.run_dir,
        findings=findings,
        timeout_per_probe=ctx.config.phases.bisect.timeout_per_probe_s,
        logprob_tol=probe_tolerance(ctx.need_model().dtype, tolerance),
        progress=ctx.progress,
    )
    payload = dump(result)
    culprit = payload.get("culprit") or payload.get("operators") or payload.get("culprits")
    return Outcome(status=Status.PASS, reason=f"culprit: {culprit}" if culprit else "", payload=payload)


def _candidate_findings(ctx: RunContext) -> list[Any]:
    from stackcert.evidence.findings import Finding

    out = []
    for step in ("candidate.serve", "candidate.smoke"):
        data = ctx.result(step) or {}
        out += [Finding.model_validate(f) for f in data.get("findings", [])]
    return out
