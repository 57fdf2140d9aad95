"""`stackcert migrate-check PLUGIN_DIR MODEL_FILE`: static checks of a model ported into vllm-plugin-FL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from stackcert.cli.app import JsonFlag, app, console, emit
from stackcert.migrate.check import CheckResult, migrate_check


def _render(result: CheckResult) -> None:
    vllm = f"vLLM {result.vllm_version}" if result.vllm_version else "vLLM not installed"
    console.print(f"[bold]{escape(result.model_file)}[/] as [bold]{escape(result.module)}[/] ({vllm})")
    for issue in result.issues:
        console.print(
            f"{escape(issue.file)}:{issue.line}: [red]{issue.rule}[/] {escape(issue.message)}\n"
            f"    [dim]fix:[/] {escape(issue.fix)}",
            highlight=False,
            soft_wrap=True,
        )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if result.clean:
        console.print("[green]✓[/] no issues")
    else:
        console.print(f"[red]{len(result.issues)} issue(s)[/]")


@app.command("migrate-check")
def migrate_check_command(
    plugin_dir: Annotated[Path, typer.Argument(help="The vllm-plugin-FL checkout (holding vllm_fl/).")],
    model_file: Annotated[Path, typer.Argument(help="The ported model's .py file.")],
    config_file: Annotated[
        Path | None, typer.Option("--config-file", help="The config bridge (a PretrainedConfig subclass).")
    ] = None,
    init_file: Annotated[
        Path | None,
        typer.Option("--init-file", help="The file registering models (default: vllm_fl/__init__.py)."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Check a ported model statically: imports against the plugin tree and the installed vLLM,
    config bridge, registration of this file's classes, absolute paths, bare excepts.
    Exit 0 clean, 1 issues, 2 bad input."""
    result = migrate_check(plugin_dir, model_file, config_file=config_file, init_file=init_file)
    data = result.model_dump(mode="json") | {"clean": result.clean}
    emit(data, as_json=json_out, render=lambda _: _render(result))
    if not result.clean:
        raise typer.Exit(1)
