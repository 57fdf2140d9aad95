"""`stackcert smoke --stack NAME`: offline generation + served API checks for one stack."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from stackcert.cli.app import JsonFlag, app, console, emit, want_json
from stackcert.cli.common import (
    ModelOpt,
    NoOfflineOpt,
    PresetOpt,
    RunDirOpt,
    cli_progress,
    default_run_dir,
    resolve_cli_model,
    status_text,
)
from stackcert.config import load_preset
from stackcert.errors import ExitCode
from stackcert.jsonio import envelope, write_json_atomic
from stackcert.paths import stack_folder
from stackcert.smoke.models import SmokeResult


def render_smoke(result: SmokeResult) -> None:
    """The smoke checks of one stack as a table, then its findings and output sample."""
    table = Table(title=f"smoke: stack {result.stack} ({result.engine})")
    for column in ("phase", "check", "status", "s", "detail"):
        table.add_column(column, overflow="fold")
    for phase_result, phase in ((result.phase_a_offline, "offline"), (result.phase_b_serve, "serve")):
        if not phase_result.checks:
            table.add_row(phase, "-", status_text(phase_result.status.value), "", phase_result.reason)
        for check in phase_result.checks:
            table.add_row(
                phase,
                check.name,
                status_text(check.status.value),
                f"{check.duration_s:.1f}",
                check.detail[:160],
            )
    console.print(table)
    for finding in result.findings:
        where = "/".join(p for p in (finding.step, finding.phase) if p)
        console.print(
            f"  [red]✗[/] [{where} {finding.layer.value} {finding.component.value} {finding.category}] "
            f"{finding.message[:240]}",
            highlight=False,
        )
    if result.output_sample:
        console.print(f"output sample: {result.output_sample!r}", highlight=False)
    total = result.timings.get("total_s", 0.0)
    console.print(f"result: {status_text(result.status.value)}  ({total:.1f}s)")


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
        stack_dir = stack_folder(folder, spec.name)
        result = run_smoke(
            spec, model_ref, folder=stack_dir, options=SmokeOptions(offline=not no_offline), progress=progress
        )
    write_json_atomic(stack_dir / "smoke.json", envelope("smoke", result.model_dump(mode="json")))
    emit(result, as_json=json_out, render=render_smoke)
    if not want_json(json_out):
        console.print(f"[dim]written: {stack_dir / 'smoke.json'}[/]")
    raise typer.Exit(int(ExitCode.PASS if result.status == Status.PASS else ExitCode.FAIL))
