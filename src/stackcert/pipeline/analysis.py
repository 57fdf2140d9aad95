"""Compare (A/B diff of the smoke runs, performance ratio, consistency status) and bisect."""

from __future__ import annotations

from stackcert.bench.compare import compare_bench
from stackcert.consistency.tolerance import probe_tolerance
from stackcert.diagnose import answers
from stackcert.diagnose.diff import diff_runs
from stackcert.diagnose.probe import run_bisect
from stackcert.diagnose.vllm_probe import run_vllm_bisect
from stackcert.evidence.findings import Finding
from stackcert.jsonio import envelope, read_json, write_json_atomic
from stackcert.pipeline.context import Outcome, RunContext
from stackcert.runmodel.results import CompareResult
from stackcert.status import Status

# Components of operator libraries: a candidate failing on one of these is worth a bisection.
OPERATOR_COMPONENTS = {"flag_gems", "triton", "stackcert_fault_ops", "vllm_fl"}
# What an operator exclusion list can fix (the plugin's own out-of-tree ops are not in it).
LIBRARY_COMPONENTS = {"flag_gems", "triton", "stackcert_fault_ops"}


def compare_step(ctx: RunContext) -> Outcome:
    """The smoke A/B diff, the candidate/reference throughput ratio against the gate, and consistency."""
    res, gate = ctx.results, ctx.config.gates.perf_ratio
    result = CompareResult(consistency=res.consistency_status())
    ref_smoke, cand_smoke = res.reference.smoke, res.candidate.smoke
    if ref_smoke is not None and cand_smoke is not None:
        result.diff = diff_runs(ref_smoke, cand_smoke)
    ref_bench, cand_bench = res.reference.bench, res.candidate.bench
    if ref_bench is not None and cand_bench is not None:
        result.perf = compare_bench(ref_bench, cand_bench, threshold=gate)
        result.perf_ratio = result.perf.min_ratio
        result.perf_ok = result.perf.passed
    else:
        result.notes.append("no benchmark pair to compare")
    problems = []
    if result.diff is not None and result.diff.conclusion != "BOTH_PASS":
        problems.append(result.diff.detail)
    if result.perf_ok is False:
        shown = f"{result.perf_ratio:.2f}" if result.perf_ratio is not None else "?"
        problems.append(f"throughput ratio {shown} < {gate}")
    if result.diff is None and result.perf_ok is None:
        return Outcome(
            status=Status.SKIPPED, reason="; ".join(result.notes) or "nothing to compare", result=result
        )
    return Outcome(status=Status.FAIL if problems else Status.PASS, reason="; ".join(problems), result=result)


def candidate_findings(ctx: RunContext) -> list[Finding]:
    """What the candidate's start and smoke test found (the bisection's hints)."""
    return ctx.results.findings("candidate.serve") + ctx.results.findings("candidate.smoke")


def _starts_or_answers_wrong(ctx: RunContext) -> bool:
    """The candidate did not start, or its smoke test failed (what an engine-start probe can see)."""
    return ctx.ledger.status("candidate.serve").bad or ctx.ledger.status("candidate.smoke").bad


def _device_fault(ctx: RunContext) -> bool:
    """The candidate's failure is a crash of the engine or device (not a bad argument, model or port)."""
    faults = {"device_error", "segfault", "crash", "kernel_error", "exited", "compile_error"}
    return any(f.category in faults for f in candidate_findings(ctx))


def bisect_reason(ctx: RunContext) -> str | None:
    """None when a bisection is warranted, else why not."""
    led = ctx.ledger
    if led.status("reference.serve") is not Status.PASS or led.status("reference.smoke") is not Status.PASS:
        return "not needed: the reference stack does not pass"
    # An inconclusive consistency result (retest) is not a failure: nothing to bisect there.
    cand_bad = _starts_or_answers_wrong(ctx) or (
        led.status("consistency").bad and ctx.results.consistency_status() != "retest"
    )
    if not cand_bad:
        return "not needed: the candidate does not fail"
    stack = ctx.stack("candidate")
    if stack.engine == "vllm" and not _starts_or_answers_wrong(ctx):
        # Each vLLM probe is an engine start, judged on a few greedy answers: it cannot see a
        # statistical consistency difference, and a search would cost ~log2(n) starts for nothing.
        return (
            "not run: the vLLM candidate serves and passes smoke; a consistency-only failure is not "
            "bisected by engine starts (use stackcert bisect with a tolerance)"
        )
    if stack.operators is None:
        return "not possible: the candidate selects no operator library"
    if stack.engine != "vllm" and ctx.target.remote:
        # The probe worker talks over a local socket; vLLM candidates bisect by engine starts instead.
        return (
            f"not run: the probe-worker bisection runs on the local target only (this run: {ctx.target.kind})"
        )
    compare = ctx.results.compare
    component = compare.diff.component if compare is not None and compare.diff is not None else None
    ladder = ctx.results.ladder
    named = ladder.component if ladder is not None else None
    if ladder is not None and named not in LIBRARY_COMPONENTS:
        return f"not needed: the isolation ladder names {named or 'no component'}, not the operator library"
    if named in LIBRARY_COMPONENTS or component in OPERATOR_COMPONENTS or component is None:
        return None
    if stack.engine == "vllm" and _device_fault(ctx):
        return None  # an asynchronous device fault names no kernel: the operators are suspects
    return f"not needed: the failure is not in an operator library (component {component or 'unknown'})"


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
    got = answers.collect(server)
    path = ctx.layout.reference_answers
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, envelope("reference-answers", {"answers": [a.model_dump() for a in got]}))


def kept_answers(ctx: RunContext) -> list[answers.Answer] | None:
    """The reference answers kept while it served, or None."""
    path = ctx.layout.reference_answers
    if not path.exists():
        return None
    try:
        data = read_json(path)
        return [answers.Answer.model_validate(a) for a in data["answers"]]
    except (OSError, ValueError, KeyError, TypeError):  # damaged: the bisection starts the reference again
        return None


def bisect_step(ctx: RunContext) -> Outcome:
    """Name the operators that break the candidate: by engine starts (vLLM) or a probe worker."""
    why_not = bisect_reason(ctx)
    if why_not:
        return Outcome(status=Status.SKIPPED, reason=why_not)
    cand = ctx.stack("candidate")
    if cand.engine == "vllm":
        report = run_vllm_bisect(
            ctx.stack("reference"),
            cand,
            ctx.need_model(),
            run_dir=ctx.layout.root,
            findings=candidate_findings(ctx),
            reference_answers_=kept_answers(ctx),
            candidate_dir=ctx.layout.stack_dir(cand.name),
            progress=ctx.progress,
            target=ctx.target,
        )
    else:
        tolerance = ctx.config.phases.consistency.options.tolerance
        report = run_bisect(
            ctx.stack("reference"),
            cand,
            ctx.need_model(),
            run_dir=ctx.layout.root,
            findings=candidate_findings(ctx),
            timeout_per_probe=ctx.config.phases.bisect.timeout_per_probe_s,
            logprob_tol=probe_tolerance(ctx.need_model().dtype, tolerance),
            progress=ctx.progress,
        )
    culprits = report.result.culprits
    reason = f"culprit: {culprits}" if culprits else report.result.message
    return Outcome(status=Status.PASS, reason=reason, result=report)
