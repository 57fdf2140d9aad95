"""Weight gates: stage A starts the stack on dummy (random) weights, stage B checks the real-weights server.

Both are request-level: `GET /v1/models` lists the model and one text completion answers HTTP 200 with
non-empty text; "startup complete" alone never passes a gate. A PASS needs stage B.
"""

from __future__ import annotations

import time
from pathlib import Path

from stackcert.answers import BadAnswer, clean, model_ids
from stackcert.config import StackSpec
from stackcert.engines import EngineStartError, ModelRef, Server, ServerTimeouts, launch_server
from stackcert.features.engine_config import server_info
from stackcert.features.models import DummyRealRow, GateCheck, RequestEvidence, WeightGate, WeightGates
from stackcert.features.wire import Wire, completion_text
from stackcert.progress import NullProgress, Progress
from stackcert.status import Status
from stackcert.targets import LOCAL, Target

GATE_PROMPT = "The capital of France is"
GATE_MAX_TOKENS = 8
RANDOM_OPS = ("aten::uniform_", "aten::normal_")  # what vLLM's dummy loader draws the weights with


def serving_check(server: Server, *, timeout: float = 60.0) -> GateCheck:
    """Request-level serving: GET /v1/models lists the served model; one completion gives 200 and text."""
    t0 = time.monotonic()
    check = GateCheck(status=Status.RUNNING)
    with Wire(server, timeout=timeout) as wire:
        models = models_listed(wire, server.served_model)
        check.requests.append(models)
        check.models_listed = models.ok
        body = {
            "model": server.served_model,
            "prompt": GATE_PROMPT,
            "max_tokens": GATE_MAX_TOKENS,
            "temperature": 0,
        }
        reply = wire.post("/v1/completions", body)
        check.requests.append(reply.evidence)
        text = completion_text(reply, GATE_MAX_TOKENS)
        if reply.ok and text == "":
            reply.evidence.error = "empty output"
        check.completion_ok = reply.ok and bool(text)
        check.output_excerpt = clean(text or "", 200)
    failed = [r for r in check.requests if not r.ok]
    timed_out = any(r.status is None for r in failed)
    check.status = Status.PASS if not failed else (Status.TIMEOUT if timed_out else Status.FAIL)
    check.detail = (
        f"'{server.served_model}' listed; the completion answered {check.output_excerpt!r}"
        if not failed
        else "; ".join(f"{r.method} {r.path}: {r.error}" for r in failed)
    )
    check.duration_s = round(time.monotonic() - t0, 3)
    return check


def models_listed(wire: Wire, served_model: str) -> RequestEvidence:
    """GET /v1/models; its evidence has an error unless the answer is well-formed and lists the model."""
    reply = wire.request("GET", "/v1/models")
    if reply.ok:
        try:
            ids = model_ids(reply.data)
            if served_model not in ids:
                reply.evidence.error = f"'{served_model}' not among {clean(str(ids), 200)}"
        except BadAnswer as exc:
            reply.evidence.error = str(exc)
    return reply.evidence


def dummy_stack(stack: StackSpec) -> StackSpec:
    """The stack with `load_format: dummy` added to its engine args."""
    return stack.model_copy(update={"engine_args": {**stack.engine_args, "load_format": "dummy"}})


def dummy_weight_gate(
    stack: StackSpec,
    model: ModelRef,
    *,
    run_dir: Path,
    timeouts: ServerTimeouts | None = None,
    progress: Progress | None = None,
    target: Target = LOCAL,
) -> WeightGate:
    """Stage A: start the stack (on the target) with `--load-format dummy`, check request-level
    serving, stop it."""
    progress = progress or NullProgress()
    t0 = time.monotonic()
    gate = WeightGate(stage="dummy", stack=stack.name, load_format="dummy")
    if stack.engine != "vllm":
        gate.status = Status.SKIPPED
        gate.check = GateCheck(
            status=Status.SKIPPED,
            detail=f"--load-format dummy is a vLLM option; the {stack.engine} engine has none",
        )
        return gate
    task = f"gate dummy {stack.name}"
    progress.on_start(task)
    try:
        with launch_server(
            dummy_stack(stack), model, run_dir=run_dir, timeouts=timeouts, progress=progress, target=target
        ) as srv:
            gate.started = True
            _record_server(gate, srv)
            gate.check = serving_check(srv, timeout=(timeouts or ServerTimeouts()).request)
            gate.status = gate.check.status
            if not gate.check.passed:
                gate.findings = srv.findings()
    except EngineStartError as err:
        gate.status = Status.FAIL
        gate.findings = list(err.findings)
        gate.log_path = str(err.log_path) if err.log_path else gate.log_path
    gate.duration_s = round(time.monotonic() - t0, 3)
    progress.on_finish(task, str(gate.status))
    return gate


def real_weight_gate(server: Server) -> WeightGate:
    """Stage B on an already running real-weights server: the same request-level checks."""
    t0 = time.monotonic()
    info = server_info(server)
    load = "auto"
    if info is not None and "--load-format" in info.argv:
        at = info.argv.index("--load-format")
        load = info.argv[at + 1] if at + 1 < len(info.argv) else load
    gate = WeightGate(stage="real", stack=server.stack.name, load_format=load, started=True)
    _record_server(gate, server)
    gate.check = serving_check(server)
    gate.status = gate.check.status if load != "dummy" else Status.FAIL
    if load == "dummy":
        gate.check.detail = "this server runs dummy weights: it cannot be stage B. " + gate.check.detail
    gate.duration_s = round(time.monotonic() - t0, 3)
    return gate


def _record_server(gate: WeightGate, server: Server) -> None:
    info = server_info(server)
    if info is not None:
        gate.argv = list(info.argv)
        gate.startup_s = info.startup_s
    gate.log_path = str(server.log_path) if server.log_path else None


def non_equivalence(candidate: StackSpec, reference: StackSpec | None = None) -> list[str]:
    """Why dummy-weight runs are not numerically comparable, in general and for this stack pair."""
    notes = [
        "Dummy weights are random values drawn in the engine process: outputs on them carry no accuracy "
        "information, so stage A never allows a PASS and no numeric A/B is run on dummy weights.",
        "Two dummy-weight starts draw the same weights only if the same random-number operators run with "
        "the same seed; nothing guarantees that across stacks.",
    ]
    stacks = [s for s in (reference, candidate) if s is not None]
    for stack in stacks:
        ops = stack.operators
        if ops is None:
            continue
        other = next((s.name for s in stacks if s is not stack), "a stack without it")
        selected = ops.include is None or any(op.split("::")[-1] in ops.include for op in RANDOM_OPS)
        excluded = any(op.split("::")[-1] in ops.exclude for op in RANDOM_OPS)
        lib = "FlagGems" if ops.library == "flag_gems" else ops.library
        if selected and not excluded:
            notes.append(
                f"{stack.name} vs {other}: {stack.name} selects the operator library {lib} (via {ops.via}); "
                f"an operator library that replaces random-number operators (FlagGems replaces "
                f"aten::uniform_, measured) makes dummy weights differ between the two stacks, so no "
                f"numeric A/B between {stack.name} and {other} on dummy weights."
            )
        else:
            notes.append(
                f"{stack.name} vs {other}: {stack.name} selects {lib} without its random-number operators "
                f"({', '.join(RANDOM_OPS)} not selected); the dummy weights may still differ (other "
                "operators of the initialisation), so no numeric A/B on dummy weights either."
            )
    return notes


def weight_gates(
    stack: StackSpec,
    *,
    stage_a: WeightGate | None,
    stage_b: WeightGate | None,
    reference: StackSpec | None = None,
) -> WeightGates:
    """Both stages of `stack`, the dummy-vs-real matrix and the non-equivalence statements."""

    def status(g: WeightGate | None) -> str:
        """A stage's status, or 'not run'."""
        return str(g.status) if g is not None else "not run"

    def startup(g: WeightGate | None) -> str:
        """A started stage's startup time."""
        return f"{g.startup_s:.1f}s" if g is not None and g.started else "-"

    matrix = [
        DummyRealRow(aspect="weights", dummy="random (--load-format dummy)", real="the checkpoint's tensors"),
        DummyRealRow(
            aspect="a pass shows",
            dummy="the engine builds this architecture, allocates the KV cache and answers a request",
            real="the same with the checkpoint loaded (names, shapes, dtypes match) and real text",
        ),
        DummyRealRow(
            aspect="numerics",
            dummy="meaningless: no accuracy, no numeric A/B",
            real="the basis of consistency and of the A/B",
        ),
        DummyRealRow(aspect="verdict", dummy="never a PASS on its own", real="required for any PASS"),
        DummyRealRow(aspect="status", dummy=status(stage_a), real=status(stage_b)),
        DummyRealRow(aspect="startup", dummy=startup(stage_a), real=startup(stage_b)),
    ]
    return WeightGates(
        stack=stack.name,
        stage_a=stage_a,
        stage_b=stage_b,
        matrix=matrix,
        non_equivalence=non_equivalence(stack, reference),
    )
