"""`stackcert smoke --stack NAME`: offline generation + served API checks for one stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress as RichBar
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from stackcert.cli.app import JsonFlag, app, console, emit, err_console, want_json
from stackcert.cli.model_cmd import RichProgress
from stackcert.config import ModelSpec, Preset, load_preset
from stackcert.engines.base import ModelRef
from stackcert.errors import ExitCode
from stackcert.jsonio import envelope, private_dir, write_json_atomic
from stackcert.progress import NullProgress, Progress

STYLE = {"pass": "green", "fail": "red", "crash": "bold red", "timeout": "yellow", "skipped": "dim"}

PresetOpt = Annotated[str, typer.Option("--preset", help="Preset holding the stacks and the model.")]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="A HF checkpoint folder instead of the preset's model.")
]
RunDirOpt = Annotated[
    Path | None, typer.Option("--run-dir", help="Where results go (default: runs/<kind>-<time>).")
]
NoOfflineOpt = Annotated[bool, typer.Option("--no-offline", help="Skip Phase A (offline generation).")]


def default_run_dir(kind: str) -> Path:
    """A new run folder under runs/, created 0700 (it will hold logs, answers and configs)."""
    return private_dir(Path("runs") / f"{kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}")


def resolve_cli_model(preset: Preset, model_path: Path | None) -> ModelRef:
    from stackcert.models import resolve_model

    spec = preset.model
    if model_path is not None:
        spec = ModelSpec(
            source="path", path=str(model_path), dtype=spec.dtype, max_model_len=spec.max_model_len
        )
    return resolve_model(spec)


@contextmanager
def cli_progress(as_json: bool) -> Iterator[Progress]:
    """Spinners on stderr for people; nothing for --json."""
    if want_json(as_json):
        yield NullProgress()
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with RichBar(*columns, console=err_console, transient=True) as bar:
        yield RichProgress(bar)


def status_text(status: str) -> str:
    return f"[{STYLE.get(status, 'white')}]{status}[/]"


def render_smoke(data: dict[str, Any]) -> None:
    table = Table(title=f"smoke: stack {data['stack']} ({data['engine']})")
    for column in ("phase", "check", "status", "s", "detail"):
        table.add_column(column, overflow="fold")
    for key, phase in (("phase_a_offline", "offline"), ("phase_b_serve", "serve")):
        result = data[key]
        if not result["checks"]:
            table.add_row(phase, "-", status_text(result["status"]), "", result.get("reason", ""))
        for check in result["checks"]:
            table.add_row(
                phase,
                check["name"],
                status_text(check["status"]),
                f"{check['duration_s']:.1f}",
                check["detail"][:160],
            )
    console.print(table)
    for finding in data["findings"]:
        where = "/".join(p for p in (finding["step"], finding["phase"]) if p)
        console.print(
            f"  [red]✗[/] [{where} {finding['layer']} {finding['component']} {finding['category']}] "
            f"{finding['message'][:240]}",
            highlight=False,
        )
    if data["output_sample"]:
        console.print(f"output sample: {data['output_sample']!r}", highlight=False)
    console.print(f"result: {status_text(data['status'])}  ({data['timings'].get('total_s', 0):.1f}s)")


@app.command("smoke")
def smoke(
    stack: Annotated[str, typer.Option("--stack", help="Stack name in the preset, or a stack YAML file.")],
    preset: PresetOpt = "demo",
    model: ModelOpt = None,
    run_dir: RunDirOpt = None,
    no_offline: NoOfflineOpt = False,
    json_out: JsonFlag = False,
) -> None:
    """Smoke one stack: offline generation, then /v1 models, completions, chat, stream, burst, metrics."""
    from stackcert.config import resolve_stack
    from stackcert.smoke import SmokeOptions, run_smoke
    from stackcert.status import Status

    loaded = load_preset(preset)
    spec = resolve_stack(stack, preset)
    model_ref = resolve_cli_model(loaded, model)
    folder = run_dir or default_run_dir("smoke")
    with cli_progress(json_out) as progress:
        stack_dir = folder / "stacks" / spec.name
        result = run_smoke(
            spec, model_ref, folder=stack_dir, options=SmokeOptions(offline=not no_offline), progress=progress
        )
    write_json_atomic(stack_dir / "smoke.json", envelope("smoke", result.model_dump(mode="json")))
    emit(result.model_dump(mode="json"), as_json=json_out, render=render_smoke)
    if not want_json(json_out):
        console.print(f"[dim]written: {stack_dir / 'smoke.json'}[/]")
    raise typer.Exit(int(ExitCode.PASS if result.status == Status.PASS else ExitCode.FAIL))
