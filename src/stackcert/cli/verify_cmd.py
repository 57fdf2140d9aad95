"""`stackcert verify --reference A --candidate B`: smoke both stacks, then the A/B diff analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
from stackcert.config import load_preset, resolve_stack
from stackcert.jsonio import write_json_atomic


def render_verify(data: dict[str, Any]) -> None:
    ref, cand, diff = data["reference"], data["candidate"], data["diff"]
    table = Table(title=f"verify: {ref['stack']} (reference) vs {cand['stack']} (candidate)")
    for column in ("phase", "check", ref["stack"], cand["stack"]):
        table.add_column(column)
    for row in diff["rows"]:
        table.add_row(
            row["phase"],
            row["check"],
            status_text(row["reference"] or "-"),
            status_text(row["candidate"] or "-"),
        )
    table.add_row("", "[bold]stack[/]", status_text(ref["status"]), status_text(cand["status"]))
    console.print(table)
    for role, run in (("reference", ref), ("candidate", cand)):
        for finding in run["findings"]:
            console.print(
                f"  [red]✗[/] {role}: [{finding['layer']} {finding['component']} {finding['category']}] "
                f"{finding['message'][:240]}",
                highlight=False,
            )
    console.print(f"conclusion: [bold]{diff['conclusion']}[/] — {diff['detail']}", highlight=False)
    if diff["component"]:
        console.print(
            f"component at fault: [bold]{diff['component']}[/] ({diff['component_evidence']})",
            highlight=False,
        )
    if data.get("effective_ops") is not None:
        console.print(f"candidate effective operators: {', '.join(data['effective_ops']) or '(none)'}")
    console.print(f"recommended stack: [bold]{diff['recommended_stack']}[/]   status: {data['status']}")


@app.command("verify")
def verify(
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Reference stack (name or YAML file; default: the preset's)."),
    ] = None,
    candidate: Annotated[
        str | None,
        typer.Option("--candidate", help="Candidate stack (name or YAML file; default: the preset's)."),
    ] = None,
    preset: PresetOpt = "demo",
    model: ModelOpt = None,
    run_dir: RunDirOpt = None,
    no_offline: NoOfflineOpt = False,
    export_flagrelease: Annotated[
        Path | None,
        typer.Option("--export-flagrelease", help="Also write FlagRelease model-verify JSON here."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Smoke reference and candidate (always both), diff the runs: conclusion, component, stack to use."""
    from stackcert.diagnose.verify import flagrelease_export, run_verify
    from stackcert.smoke import SmokeOptions

    loaded = load_preset(preset)
    # (the preset names its roles: `verify --preset demo` needs no more)
    ref_spec = resolve_stack(reference or "reference", preset)
    cand_spec = resolve_stack(candidate or "candidate", preset)
    model_ref = resolve_cli_model(loaded, model)
    folder = run_dir or default_run_dir("verify")
    with cli_progress(json_out) as progress:
        result = run_verify(
            ref_spec,
            cand_spec,
            model_ref,
            run_dir=folder,
            options=SmokeOptions(offline=not no_offline),
            progress=progress,
        )
    if export_flagrelease is not None:
        write_json_atomic(export_flagrelease, flagrelease_export(result))
    emit(result.model_dump(mode="json"), as_json=json_out, render=render_verify)
    if not want_json(json_out):
        console.print(f"[dim]written: {folder / 'verify.json'}[/]")
    raise typer.Exit(int(result.exit_code))
