"""`stackcert run`: the ordered steps, their gates, deadlines, the ledger and resume.

Order (one engine start per stack): env → install → model → reference: serve, smoke, bench (server
kept up) → candidate: serve, smoke, bench → consistency(reference, candidate) → stop both →
compare → bisect → report. Each step runs in a worker thread with a deadline; Ctrl-C stops the
engines, puts the running step back to pending and leaves a ledger `--resume` continues from.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from stackcert.errors import StackcertError
from stackcert.jsonio import envelope, write_json_atomic
from stackcert.pipeline import adaptation, analysis, steps
from stackcert.pipeline.context import ROLES, Outcome, RunContext
from stackcert.pipeline.devices import device_counter, with_parallel_defaults
from stackcert.pipeline.ladder import ladder_step
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.reporting import report_step, verdict_of
from stackcert.pipeline.servers import ServerPool
from stackcert.progress import NullProgress, Progress
from stackcert.runmodel.config import RunConfig
from stackcert.runmodel.layout import RunLayout
from stackcert.runmodel.results import StepFindings
from stackcert.runmodel.verdict import VerdictResult
from stackcert.status import Status
from stackcert.targets import open_target

PLAN: list[tuple[str, str]] = [
    ("env", "Probe the host"),
    ("install", "Install gate: the engine imports"),
    ("model", "Resolve the model"),
    ("dummy_weights", "Weight gate A: the candidate on dummy weights"),
    ("reference.serve", "Start the reference engine"),
    ("reference.smoke", "Smoke test the reference"),
    ("reference.bench", "Benchmark the reference"),
    ("candidate.serve", "Start the candidate engine"),
    ("candidate.smoke", "Smoke test the candidate"),
    ("candidate.bench", "Benchmark the candidate"),
    ("features", "Feature matrix of the candidate"),
    ("weights", "Weight gate B: the candidate on real weights"),
    ("consistency", "Consistency: reference vs candidate"),
    ("compare", "Compare the stacks"),
    ("ladder", "Walk the isolation ladder"),
    ("bisect", "Bisect the operators"),
    ("report", "Write the report"),
]


class Interrupted(Exception):
    """Ctrl-C during a step: the engines are stopped and the step is pending again."""

    def __init__(self, run_dir: Path, step: str) -> None:
        super().__init__(f"interrupted during {step}")
        self.run_dir = run_dir
        self.step = step


def call_with_deadline(fn: Callable[[], Outcome], timeout_s: float, name: str) -> tuple[bool, Any]:
    """Run fn in a daemon thread. (True, outcome or exception) when it ended, (False, None) on timeout."""
    box: list[Outcome | BaseException] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # handed to the caller
            box.append(exc)

    worker = threading.Thread(target=target, name=f"step-{name}", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout_s
    while worker.is_alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return False, None
        worker.join(timeout=min(0.25, left))  # short joins keep Ctrl-C responsive
    return True, box[0] if box else None


class Pipeline:
    """The steps of one run in order, each under its deadline, recorded in the ledger."""

    def __init__(self, config: RunConfig, ledger: Ledger, progress: Progress | None = None) -> None:
        target = open_target(config.target)
        # unset TP: the devices the target has
        config = with_parallel_defaults(config, device_counter(config.target))
        self.config = config
        self.ledger = ledger
        self.progress = progress or NullProgress()
        self.layout = RunLayout(ledger.run_dir, config.reference, config.candidate)
        pool = ServerPool(
            ledger, start_timeout_s=config.timeouts.engine_start, progress=self.progress, target=target
        )
        self.ctx = RunContext(config, self.layout, ledger, self.progress, pool)

    # --- one step -------------------------------------------------------------------------------
    def step(
        self,
        step_id: str,
        fn: Callable[[], Outcome],
        timeout_s: float,
        skip: str | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> Status:
        """Run one step unless it is done or skipped; record its outcome."""
        led = self.ledger
        if led.done(step_id):
            return led.status(step_id)
        if skip:
            led.skip(step_id, skip)
            self.progress.on_finish(step_id, Status.SKIPPED.value)
            return Status.SKIPPED
        led.start(step_id)
        self.progress.on_start(step_id)
        try:
            ended, value = call_with_deadline(fn, timeout_s, step_id)
        except KeyboardInterrupt:
            led.interrupt(step_id)
            self.progress.on_finish(step_id, "interrupted")
            self.ctx.pool.stop_all()
            raise Interrupted(self.layout.root, step_id) from None
        if not ended:
            if on_timeout:
                on_timeout()
            outcome = Outcome(status=Status.TIMEOUT, reason=f"ran past its {timeout_s:.0f}s limit")
        else:
            outcome = self._outcome(step_id, value)
        return self._record(step_id, outcome)

    def _outcome(self, step_id: str, value: Any) -> Outcome:
        if isinstance(value, Outcome):
            return value
        if isinstance(value, StackcertError):
            return Outcome(
                status=Status.FAIL,
                reason=value.one_line(),
                findings=list(getattr(value, "findings", []) or []),
            )
        if isinstance(value, KeyboardInterrupt):
            raise value
        if isinstance(value, BaseException):
            log = self.layout.traceback_file(step_id)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(traceback.format_exception(value)), encoding="utf-8")
            return Outcome(status=Status.CRASH, reason=f"{type(value).__name__}: {value} (see {log.name})")
        return Outcome(status=Status.CRASH, reason=f"step returned {type(value).__name__}")

    def _record(self, step_id: str, outcome: Outcome) -> Status:
        """Write the step's typed result (once, inside the envelope) and keep it for later steps."""
        rel: str | None = None
        result: BaseModel | None = outcome.result
        if result is None and outcome.findings:
            result = StepFindings(findings=outcome.findings)
        if result is not None:
            rel = self.layout.result_rel(step_id)
            started = self.ledger.get(step_id).started
            write_json_atomic(
                self.layout.root / rel, envelope(step_id, result.model_dump(mode="json"), started=started)
            )
            if isinstance(result, StepFindings):
                self.ctx.results.failures[step_id] = result.findings
            else:
                self.ctx.results.put(step_id, result)
        self.ledger.finish(step_id, outcome.status, outcome.reason, rel)
        self.progress.on_finish(step_id, outcome.status.value)
        return outcome.status

    # --- the whole run --------------------------------------------------------------------------
    def _gate(self) -> str | None:
        led = self.ledger
        if led.status("install").bad:
            return "install gate failed: the engine does not import"
        if led.done("model") and led.status("model") is not Status.PASS:
            return f"the model was not resolved ({led.get('model').reason or led.status('model').value})"
        return None

    def _serve_gate(self, role: str) -> str | None:
        gate = self._gate()
        if gate:
            return gate
        status = self.ledger.status(f"{role}.serve")
        if status.done and status is not Status.PASS:
            return f"the {role} stack did not serve"
        return None

    def run(self) -> VerdictResult:
        """Every step in order (done ones skipped on resume); the verdict at the end."""
        cfg, led, ctx = self.config, self.ledger, self.ctx
        led.ensure_steps(PLAN)
        ctx.load_done()
        t = cfg.timeouts
        try:
            self.step("env", lambda: steps.env_step(ctx), t.env)
            self.step("install", lambda: steps.install_step(ctx), t.install)
            self.step("model", lambda: steps.model_step(ctx), t.model, skip=self._gate())
            weights = cfg.phases.weights
            self.step(
                "dummy_weights",
                lambda: adaptation.dummy_weights_step(ctx),
                weights.timeout_s,
                skip=self._gate() or _off(weights.enabled and weights.dummy, "phases.weights.dummy"),
            )
            for role in ROLES:
                self._stack_steps(role)
            self._adaptation()
            self._consistency()
            with contextlib.suppress(Exception):  # an optional saving; the bisection can start its own
                analysis.keep_reference_answers(ctx)
            ctx.pool.stop_all()  # free the memory before compare / bisect
            self.step("compare", lambda: analysis.compare_step(ctx), t.compare)
            bisect = cfg.phases.bisect
            self.step(
                "ladder",
                lambda: ladder_step(ctx),
                bisect.timeout_s,
                skip=None if bisect.enabled else "turned off (phases.bisect.enabled: false)",
                on_timeout=ctx.pool.stop_all,
            )
            self.step(
                "bisect",
                lambda: analysis.bisect_step(ctx),
                bisect.timeout_s,
                skip=None if bisect.enabled else "turned off (phases.bisect.enabled: false)",
            )
            self.step("report", lambda: report_step(ctx), t.report)
        finally:
            ctx.pool.stop_all()
        return verdict_of(ctx)

    def _stack_steps(self, role: str) -> None:
        cfg, ctx = self.config, self.ctx
        name = ctx.stack(role).name
        self.step(
            f"{role}.serve",
            lambda: steps.serve_step(ctx, role),
            cfg.timeouts.engine_start + 120,
            skip=self._gate(),
            on_timeout=lambda: ctx.pool.stop(name),
        )
        for phase, fn in (("smoke", steps.smoke_step), ("bench", steps.bench_step)):
            spec = getattr(cfg.phases, phase)
            skip = self._serve_gate(role) or (
                None if spec.enabled else f"turned off (phases.{phase}.enabled: false)"
            )
            self.step(
                f"{role}.{phase}",
                functools.partial(fn, ctx, role),
                spec.timeout_s,
                skip=skip,
                on_timeout=lambda: ctx.pool.stop(name),
            )

    def _adaptation(self) -> None:
        """The feature matrix and weight gate B, while the candidate's real-weights server is up."""
        cfg, ctx = self.config, self.ctx
        serve_gate = self._serve_gate("candidate")
        for step_id, fn, spec in (
            ("features", adaptation.features_step, cfg.phases.features),
            ("weights", adaptation.weights_step, cfg.phases.weights),
        ):
            self.step(
                step_id,
                functools.partial(fn, ctx),
                spec.timeout_s,
                skip=serve_gate or _off(spec.enabled, f"phases.{step_id}.enabled"),
                on_timeout=lambda: ctx.pool.stop(ctx.stack("candidate").name),
            )

    def _consistency(self) -> None:
        cfg, ctx = self.config, self.ctx
        spec = cfg.phases.consistency
        skip = self._serve_gate("reference") or self._serve_gate("candidate")
        if not spec.enabled:
            skip = skip or "turned off (phases.consistency.enabled: false)"
        self.step(
            "consistency",
            lambda: steps.consistency_step(ctx),
            spec.timeout_s,
            skip=skip,
            on_timeout=ctx.pool.stop_all,
        )


def _off(enabled: bool, key: str) -> str | None:
    """The skip reason of a step turned off in the config."""
    return None if enabled else f"turned off ({key}: false)"
