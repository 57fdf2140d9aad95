"""The transformers engine: the hf_server child process (OpenAI API) over a transformers model."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef, ServerTimeouts
from stackcert.engines.server import ProcessServer, phase_rules, require_free_port, substitute_port
from stackcert.jsonio import envelope, read_json, write_json_atomic
from stackcert.progress import Progress
from stackcert.targets import LOCAL, Target

HF_PHASES = phase_rules(
    [
        (r"hf_server: loading model", "loading_weights"),
        (r"operators in effect", "operators"),
        (r"model loaded; serving|Running on http", "serving"),
    ]
)
EFFECTIVE_OPS = "effective_ops.json"


def server_argv(
    stack: StackSpec,
    model: ModelRef,
    port: int,
    run_dir: Path,
    python: str = sys.executable,
    host: str = "127.0.0.1",
) -> list[str]:
    """The command line of stackcert's transformers server (hf_server) for this stack, model and port
    (`run_dir`: where it writes effective_ops.json, as the target sees it)."""
    args = stack.engine_args
    argv = [
        python,
        "-m",
        "stackcert.engines.hf_server",
        "--model",
        str(model.path),
        "--tokenizer",
        str(model.tokenizer),
        "--served-model-name",
        model.served_name,
        "--host",
        host,
        "--port",
        str(port),
        "--dtype",
        str(args.get("dtype", model.dtype)),
        "--max-model-len",
        str(args.get("max_model_len", model.max_model_len)),
    ]
    if int(args.get("batch_size", 1)) > 1:
        argv += ["--batch-size", str(int(args["batch_size"]))]
    if args.get("attn_implementation"):
        argv += ["--attn-implementation", str(args["attn_implementation"])]
    if model.trust_remote_code:
        argv.append("--trust-remote-code")
    if model.chat_template:
        argv += ["--chat-template", str(model.chat_template)]
    if stack.operators is not None:
        argv += [
            "--operators",
            stack.operators.model_dump_json(),
            "--effective-ops",
            str(run_dir / EFFECTIVE_OPS),
        ]
    return argv


def read_effective_ops(run_dir: Path) -> list[str] | None:
    """The operators the engine reported in effect (effective_ops.json); None when it wrote none."""
    path = run_dir / EFFECTIVE_OPS
    if not path.exists():
        return None
    data = read_json(path)
    if isinstance(data, dict):  # operators.record(): an envelope with "effective"
        data = data.get("effective")
    return [str(x) for x in data] if isinstance(data, list) else None


@contextlib.contextmanager
def serve(
    stack: StackSpec,
    model: ModelRef,
    *,
    run_dir: Path,
    timeouts: ServerTimeouts,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
    target: Target = LOCAL,
) -> Iterator[ProcessServer]:
    """Start the transformers server on the target for the with-block (ready, server.json written),
    stop it after."""
    if not target.remote:
        require_free_port(stack)
    port = int(stack.engine_args.get("port") or target.free_port())
    exposure = target.expose(port)
    placed = target.place(run_dir)
    argv = (
        substitute_port(command, port)
        if command
        else server_argv(stack, model, port, placed, target.python, exposure.bind_host)
    )
    log_path = run_dir / "server.log"
    with contextlib.suppress(FileNotFoundError):
        log_path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (run_dir / EFFECTIVE_OPS).unlink()
    server = ProcessServer(
        stack=stack,
        engine="transformers",
        launcher="command" if command else "hf_server",
        argv=argv,
        env=stack.child_env(target.base_env()),
        port=port,
        served_model=model.served_name,
        log_path=log_path,
        timeouts=timeouts,
        phases=HF_PHASES,
        progress=progress,
        model_dirs=(str(model.path),),
        target=target,
        exposure=exposure,
    )
    server.start()
    with contextlib.suppress(OSError):  # a lost copy reads as "no operators reported"
        target.fetch(placed, run_dir)
    server.info.effective_ops = read_effective_ops(run_dir)
    write_json_atomic(run_dir / "server.json", envelope("server", server.info.model_dump(mode="json")))
    try:
        yield server
    finally:
        server.stop()
