"""Engines (vLLM, transformers, endpoint) and the supervision of the processes they start.

Public API (see docs/engines.md):

- ``launch_server(stack, model, run_dir=..., timeouts=None, progress=None)`` — a context manager
  yielding a running :class:`Server` (readiness = ``GET /v1/models`` lists the model); on exit it
  stops everything it started. A failed start raises :class:`EngineStartError` with ``findings``.
- ``run_offline(stack, model, prompts, max_tokens=..., top_logprobs=0, run_dir=..., timeout=...)``
  — greedy generation in a child process; returns an :class:`OfflineResult` (never raises for
  engine failures: ``ok`` is False and ``findings`` say why).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from stackcert.config import StackSpec
from stackcert.engines.base import (
    Completion,
    EngineStartError,
    ModelRef,
    OfflineResult,
    Server,
    ServerInfo,
    ServerTimeouts,
)
from stackcert.errors import ExitCode
from stackcert.evidence.findings import Component, Finding, Layer
from stackcert.evidence.signature import signature
from stackcert.progress import Progress
from stackcert.targets import LOCAL, Target

__all__ = [
    "Completion",
    "EngineStartError",
    "ModelRef",
    "OfflineResult",
    "Server",
    "ServerInfo",
    "ServerTimeouts",
    "launch_server",
    "run_offline",
]


def missing_model_error(stack: StackSpec, model: ModelRef, target: Target = LOCAL) -> EngineStartError | None:
    """A located finding when the model folder is not there, in the target (checked before starting)."""
    if stack.engine == "endpoint" or target.exists(model.path / "config.json"):
        return None
    where = f" in the {target.kind} target" if target.remote else ""
    what = (
        f"model path does not exist{where}: {model.path}"
        if not target.exists(model.path)
        else (f"model folder has no config.json{where}: {model.path}")
    )
    finding = Finding(
        step="launch",
        phase="starting",
        layer=Layer.L2_MODEL,
        component=Component.MODEL,
        category="model_missing",
        signature=signature("model_missing", None, what),
        message=what,
    )
    err = EngineStartError(
        f"{stack.name}: {finding.located()}",
        findings=[finding],
        where=str(model.path),
        fix="check model.path, or run `stackcert model prepare` for the demo model",
    )
    err.exit_code = ExitCode.USAGE
    return err


@contextlib.contextmanager
def launch_server(
    stack: StackSpec,
    model: ModelRef,
    *,
    run_dir: Path,
    timeouts: ServerTimeouts | None = None,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
    target: Target = LOCAL,
) -> Iterator[Server]:
    """Start the stack's engine as an OpenAI-compatible server on the target; stop everything on exit.

    `command` (tests only) replaces the engine's argv; `{port}` in it is replaced by the port.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    timeouts = timeouts or ServerTimeouts()
    if command is None:
        err = missing_model_error(stack, model, target)
        if err is not None:
            raise err
    if stack.engine in ("vllm", "transformers"):
        from stackcert.engines import transformers_engine, vllm

        serve = vllm.serve if stack.engine == "vllm" else transformers_engine.serve
        with serve(
            stack,
            model,
            run_dir=run_dir,
            timeouts=timeouts,
            progress=progress,
            command=command,
            target=target,
        ) as server:
            yield server
    else:
        from stackcert.engines import endpoint

        with endpoint.connect(stack, model, run_dir=run_dir, timeouts=timeouts) as ep:
            yield ep


def run_offline(
    stack: StackSpec,
    model: ModelRef,
    prompts: list[str],
    *,
    max_tokens: int,
    top_logprobs: int = 0,
    run_dir: Path,
    timeout: float,
) -> OfflineResult:
    """Greedy (temperature 0) generation of `prompts` in a child process of the stack's engine."""
    from stackcert.engines import offline

    run_dir.mkdir(parents=True, exist_ok=True)
    err = missing_model_error(stack, model)
    if err is not None:
        return OfflineResult(stack=stack.name, engine=stack.engine, ok=False, findings=err.findings)
    return offline.run(
        stack,
        model,
        prompts,
        max_tokens=max_tokens,
        top_logprobs=top_logprobs,
        run_dir=run_dir,
        timeout=timeout,
    )
