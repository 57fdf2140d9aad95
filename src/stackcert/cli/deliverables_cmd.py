"""`stackcert deliverables RUN_DIR`: write the run's deliverables from its saved report.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from stackcert.cli.app import JsonFlag, app, console, emit
from stackcert.report.deliverables import write_deliverables
from stackcert.report.render import load_report


@app.command("deliverables")
def deliverables_command(
    run_dir: Annotated[Path, typer.Argument(help="The folder of a run (holding report.json).")],
    json_out: JsonFlag = False,
) -> None:
    """Write the test config (vllm-ascend schema), tutorial, runbook and model card of a run into
    RUN_DIR/deliverables, from measured results only (no engine is started)."""
    report = load_report(run_dir)
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    written = write_deliverables(report, folder)
    features = folder / "features.json"
    data: dict[str, Any] = {
        "run_dir": str(folder),
        "status": report.status,
        "features": str(features) if features.is_file() else None,
        "written": [str(p) for p in written],
    }

    def render(d: dict[str, Any]) -> None:
        """The written files, for people."""
        console.print(f"Deliverables of a [bold]{d['status']}[/] run:")
        for path in d["written"]:
            console.print(f"  wrote {escape(path)}", highlight=False)
        if d["features"] is None:
            console.print("[dim]no features.json: Supported Features says 'not measured'[/]")

    emit(data, as_json=json_out, render=render)
