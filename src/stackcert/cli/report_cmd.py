"""`stackcert report RUN_DIR`: re-render report.md and report.html from the saved report.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stackcert.cli.app import JsonFlag, app, console, emit
from stackcert.report.render import load_report, write_reports


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="The folder of a run (holding report.json).")],
    json_out: JsonFlag = False,
) -> None:
    """Render report.md and report.html again from a run's report.json (no engine is started)."""
    report = load_report(run_dir)
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    written = write_reports(report, folder)
    data: dict[str, Any] = {
        "run_dir": str(folder),
        "status": report.status,
        "recommended": report.verdict.recommended,
        "exit_code": report.verdict.exit_code,
        "written": {k: str(v) for k, v in written.items()},
    }

    def render(d: dict[str, Any]) -> None:
        console.print(f"Verdict [bold]{d['status']}[/] (recommended stack: {d['recommended']})")
        for path in d["written"].values():
            console.print(f"  wrote {path}")

    emit(data, as_json=json_out, render=render)
