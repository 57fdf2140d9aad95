"""The real bisect probe: a supervised worker process that runs the candidate with operators excluded.

The worker (:mod:`stackcert.diagnose.probe_worker`) loads the model once and serves many probes
(re-selecting operators in-process between them); a probe that crashes inside an operator is a
Python exception and the worker survives it. When a probe hangs past its time limit or kills the
worker, the worker is stopped (its whole process group) and a fresh one starts for the next probe.

For FlagGems every probe gets a fresh worker and a fresh ``TRITON_CACHE_DIR`` (``fresh_per_probe``),
so no compiled kernel of an earlier probe is reused; for the fault_ops test library one worker
serves all probes. ``stackcert.engines.run_offline`` is not used here: it loads the model for every
call and returns only top log-probs, while a probe needs the full teacher-forced distribution.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stackcert.config import OperatorSelection, StackSpec
from stackcert.diagnose.bisect import ProbeOutcome, bisect_operators
from stackcert.diagnose.bisect_report import BisectReport
from stackcert.diagnose.probe_worker import WorkerSpec
from stackcert.engines import operators
from stackcert.engines.base import ModelRef
from stackcert.engines.process import ManagedProcess
from stackcert.errors import EngineError, UsageError
from stackcert.evidence.findings import Finding
from stackcert.progress import NullProgress, Progress


class WorkerProbe:
    """``probe(excluded) -> ProbeOutcome`` backed by a supervised worker process."""

    def __init__(
        self,
        spec: WorkerSpec,
        stack: StackSpec,
        *,
        work_dir: Path,
        timeout_per_probe: float = 120.0,
        load_timeout: float = 300.0,
        fresh_per_probe: bool = False,
    ) -> None:
        self.spec = spec
        self.stack = stack
        self.work_dir = work_dir
        self.timeout = timeout_per_probe
        self.load_timeout = load_timeout
        self.fresh = fresh_per_probe
        self.starts = 0
        self.reference_tokens: list[int] = []
        self._proc: ManagedProcess | None = None
        self._stream: Any = None
        self._sock_dir: str | None = None

    # -- worker lifecycle ---------------------------------------------------------------
    def _start(self) -> None:
        self.starts += 1
        self.work_dir.mkdir(parents=True, exist_ok=True)
        spec_path = self.work_dir / "worker-spec.json"
        spec_path.write_text(self.spec.model_dump_json(indent=2), encoding="utf-8")
        self._sock_dir = tempfile.mkdtemp(prefix="sc-probe-")  # short path: AF_UNIX limit
        sock_path = os.path.join(self._sock_dir, "w.sock")
        env = self.stack.child_env(dict(os.environ))
        if self.spec.selection.library == "flag_gems":
            env["TRITON_CACHE_DIR"] = str(self.work_dir / f"triton-cache-{self.starts:03d}")
        argv = [
            sys.executable,
            "-m",
            "stackcert.diagnose.probe_worker",
            "--spec",
            str(spec_path),
            "--socket",
            sock_path,
        ]
        self._proc = ManagedProcess(argv, log_path=self.work_dir / "worker.log", env=env).start()
        deadline = time.monotonic() + self.load_timeout
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                conn.connect(sock_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if not self._proc.running or time.monotonic() > deadline:
                    conn.close()
                    self.close()
                    raise EngineError(
                        "the probe worker did not start",
                        where=str(self.work_dir / "worker.log"),
                        fix="read the worker log",
                    ) from None
                time.sleep(0.1)
        conn.settimeout(max(1.0, deadline - time.monotonic()))
        self._stream = conn.makefile("rwb")
        try:
            ready = json.loads(self._stream.readline() or b"{}")
        except (TimeoutError, OSError, ValueError):
            ready = {"error": "no answer before the load timeout"}
        if not ready.get("ready"):
            self.close()
            raise EngineError(
                f"the probe worker could not load the model or run the reference: {ready.get('error')}",
                where=str(self.work_dir / "worker.log"),
                fix="read the worker log",
            )
        self.reference_tokens = list(ready.get("reference_tokens", []))
        conn.settimeout(self.timeout)

    def close(self) -> None:
        """Stop the worker process and remove its socket folder."""
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
            self._stream = None
        if self._proc is not None:
            self._proc.stop(grace=3.0)
            self._proc = None
        if self._sock_dir:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._sock_dir = None

    def __enter__(self) -> WorkerProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if self._proc is None:
            self._start()
        assert self._stream is not None
        try:
            self._stream.write(json.dumps(request).encode() + b"\n")
            self._stream.flush()
            line = self._stream.readline()
        except (TimeoutError, OSError):
            line = None
        if not line:
            return None
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise EngineError(
                f"the probe worker refused the request: {answer['error']}",
                where=str(self.work_dir / "worker.log"),
                fix="read the worker log",
            )
        return answer

    # -- probing ------------------------------------------------------------------------
    def select(self, selection: OperatorSelection, record_dir: Path | None = None) -> None:
        """Serve a different candidate selection (same model, prompt and reference) from now on."""
        self.spec = self.spec.model_copy(update={"selection": selection, "record_dir": record_dir})
        request = {
            "kind": "select",
            "selection": selection.model_dump(),
            "record_dir": str(record_dir) if record_dir else None,
        }
        if self._proc is not None and self._ask(request) is None:
            self.close()

    def effective(self) -> list[str]:
        """The operators the candidate really activates in the worker (nothing excluded)."""
        answer = self._ask({"kind": "effective"})
        if answer is None:
            self.close()
            raise EngineError(
                "the probe worker died while applying the operator selection",
                where=str(self.work_dir / "worker.log"),
                fix="read the worker log",
            )
        return list(answer["effective"])

    def generate(self, excluded: list[str] | None = None) -> list[int]:
        """The candidate's greedy tokens with these operators excluded."""
        answer = self._ask({"kind": "generate", "excluded": excluded or []})
        if answer is None:
            self.close()
            raise EngineError(
                "the probe worker died while generating",
                where=str(self.work_dir / "worker.log"),
                fix="read the worker log",
            )
        return list(answer["tokens"])

    def __call__(self, excluded: list[str]) -> ProbeOutcome:
        started = time.monotonic()
        answer = self._ask({"kind": "probe", "excluded": excluded})
        if answer is None:
            alive = self._proc is not None and self._proc.running
            self.close()  # hung or dead: the next probe gets a fresh worker
            late = time.monotonic() - started >= self.timeout - 0.5
            if alive and late:
                return ProbeOutcome(
                    passed=False, category="timeout", reason=f"probe ran past its {self.timeout:.0f}s limit"
                )
            return ProbeOutcome(passed=False, category="crash", reason="the probe worker process died")
        if self.fresh:
            self.close()
        return ProbeOutcome.model_validate(answer["outcome"])


def traceback_operator(findings: list[Finding] | None, active: list[str]) -> str | None:
    """The first operator a finding's traceback names that is still active, if any."""
    for f in findings or []:
        if f.operator and f.operator in active:
            return f.operator
    return None


def run_bisect(
    reference: StackSpec,
    candidate: StackSpec,
    model: ModelRef,
    *,
    run_dir: Path,
    findings: list[Finding] | None = None,
    timeout_per_probe: float = 120.0,
    prompt: str = "Question: What is 12+7?\nAnswer:",
    max_new_tokens: int = 8,
    logprob_tol: float | None = None,
    device: str | None = None,
    max_probes: int | None = None,
    progress: Progress | None = None,
    worker: WorkerProbe | None = None,
) -> BisectReport:
    """Bisect the candidate's operators against the reference (the caller writes bisect.json).

    ``worker``: an already running :class:`WorkerProbe` over the same model, prompt and reference,
    reused (re-selected) instead of starting a new one; the caller closes it.
    """
    progress = progress or NullProgress()
    if candidate.operators is None:
        raise UsageError(
            f"stack '{candidate.name}' selects no operator library, so there is nothing to bisect",
            where="candidate.operators",
            fix="bisect a stack with an 'operators' section",
        )
    if candidate.engine == "vllm":  # a probe is an engine start (stackcert.diagnose.vllm_probe)
        from stackcert.diagnose.vllm_probe import run_vllm_bisect

        if candidate.operators.library != "flag_gems":
            operators.validate(candidate.operators)
        return run_vllm_bisect(
            reference,
            candidate,
            model,
            run_dir=run_dir,
            findings=findings,
            logprob_tol=logprob_tol,
            max_probes=max_probes,
            progress=progress,
        )
    if candidate.engine != "transformers":
        raise UsageError(
            f"bisect runs the transformers or vLLM engine; stack '{candidate.name}' uses {candidate.engine}",
            where="candidate.engine",
            fix="bisect a transformers or vllm stack (presets fault, gems, gpu, fault-vllm)",
        )
    gems = candidate.operators.library == "flag_gems"
    if not gems:
        operators.validate(candidate.operators)  # bad names fail here, as a UsageError, not in the worker
    spec = WorkerSpec(
        model_path=model.path,
        dtype=str(candidate.engine_args.get("dtype", model.dtype)),
        device=device or ("cuda" if gems else "cpu"),
        prompt=prompt,
        max_new_tokens=max_new_tokens,
        selection=candidate.operators,
        reference_selection=reference.operators,
        logprob_tol=logprob_tol if logprob_tol is not None else (0.5 if gems else 0.01),
        record_dir=run_dir / "bisect" / "operators",
    )
    work = run_dir / "bisect"
    started = time.time()
    with contextlib.ExitStack() as stack:
        if worker is None:
            probe = stack.enter_context(
                WorkerProbe(
                    spec, candidate, work_dir=work, timeout_per_probe=timeout_per_probe, fresh_per_probe=gems
                )
            )
        else:
            probe = worker
            probe.select(candidate.operators, spec.record_dir)
        starts_before = probe.starts
        progress.on_start("bisect")
        active = probe.effective()
        if probe.fresh:
            probe.close()

        def logged(excluded: list[str]) -> ProbeOutcome:
            outcome = probe(excluded)
            progress.on_advance("bisect", 1.0)
            progress.on_message("bisect", f"excluded {len(excluded)}/{len(active)}: {outcome.category}")
            return outcome

        result = bisect_operators(
            active,
            logged,
            traceback_op=traceback_operator(findings, active),
            max_probes=max_probes,
            candidate=candidate,
        )
        progress.on_finish("bisect", result.status)
    return BisectReport(
        engine="transformers",
        reference=reference.name,
        candidate=candidate.name,
        library=candidate.operators.library,
        model=str(model.path),
        prompt=prompt,
        max_new_tokens=max_new_tokens,
        logprob_tol=probe.spec.logprob_tol,
        worker_starts=probe.starts - starts_before,
        reference_tokens=probe.reference_tokens,
        duration_s=round(time.time() - started, 2),
        result=result,
    )
