"""`stackcert run`: the whole certification, with a live view of the steps."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from stackcert.cli.app import JsonFlag, app, console, emit, err_console, want_json
from stackcert.errors import UsageError
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.preflight import preflight, redaction_note
from stackcert.pipeline.runner import PLAN, Interrupted
from stackcert.pipeline.session import execute, new_run, resume_run
from stackcert.report.render import load_report
from stackcert.report.safe import plain
from stackcert.report.schema import Report
from stackcert.runmodel.config import from_preset, load_run_config
from stackcert.runmodel.layout import RunLayout
from stackcert.runmodel.verdict import VerdictResult

_ICON = {
    "pending": "[dim]·[/]",
    "running": "[cyan]▶[/]",
    "pass": "[green]✔[/]",
    "fail": "[red]✘[/]",
    "skipped": "[dim]–[/]",
    "timeout": "[red]⏱[/]",
    "crash": "[red]✘[/]",
    "interrupted": "[yellow]‖[/]",
}
_STYLE = {
    "pass": "green",
    "fail": "red",
    "crash": "red",
    "timeout": "red",
    "skipped": "dim",
    "running": "cyan",
}


class LiveProgress:
    """The Progress protocol on a rich Live view: the step table, and bars for the library tasks."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.steps = {step_id for step_id, _ in PLAN}
        self.bars = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}{task.fields[total_text]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
        )
        self.tasks: dict[str, TaskID] = {}
        self.started: dict[str, float] = {}
        self.messages: dict[str, str] = {}
        self.current: str | None = None
        self._lock = threading.Lock()

    # --- Progress protocol ---
    def on_start(self, task: str, total: float | None = None) -> None:
        with self._lock:
            if task in self.steps:
                self.current = task
                self.started[task] = time.monotonic()
                return
            if task in self.tasks:
                self.bars.update(self.tasks[task], total=total, completed=0)
                return
            self.tasks[task] = self.bars.add_task(
                task, total=total, note="", total_text=f"/{total:.0f}" if total else ""
            )

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        with self._lock:
            if task in self.tasks:
                note = " ".join(f"{k}={v:.3g}" for k, v in list(metrics.items())[:3])
                self.bars.update(self.tasks[task], advance=advance, note=note)

    def on_message(self, task: str, message: str) -> None:
        with self._lock:
            key = task if task in self.steps else (self.current or task)
            self.messages[key] = message[:100]

    def on_finish(self, task: str, status: str) -> None:
        with self._lock:
            if task in self.tasks:
                self.bars.remove_task(self.tasks.pop(task))
            if task == self.current:
                self.current = None

    # --- rendering ---
    def __rich__(self) -> Group:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(width=2)
        table.add_column(min_width=18)
        table.add_column(min_width=36)
        table.add_column(justify="right", min_width=7)
        table.add_column(overflow="fold")
        for rec in self.ledger.records():
            status = rec.status.value
            if rec.status.value == "running" and rec.id in self.started:
                secs = time.monotonic() - self.started[rec.id]
            else:
                secs = rec.duration_s or 0.0
            shown = f"{secs:6.1f}s" if rec.status.value != "pending" else ""
            note = plain(rec.reason or self.messages.get(rec.id, ""), 300)  # no escape sequences
            # Text, not markup: reasons quote log lines that may hold [brackets].
            table.add_row(
                _ICON.get(status, "?"),
                Text(rec.id, style=_STYLE.get(status, "")),
                rec.title,
                shown,
                Text(note, style="dim"),
            )
        return Group(table, self.bars)


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _summary(report: Report) -> None:
    """The step table and the verdict of a finished run."""
    table = Table(title=f"stackcert run {report.run_id}")
    table.add_column("Step")
    table.add_column("Status")
    table.add_column("Duration", justify="right")
    table.add_column("Reason", overflow="fold")
    for rec in report.timeline:
        status = rec.status.value
        table.add_row(
            Text(rec.id),
            Text(status, style=_STYLE.get(status, "")),
            f"{rec.duration_s:.1f}s" if rec.duration_s is not None else "–",
            Text(plain(rec.reason, 300)),
        )
    console.print(table)
    _verdict_lines(report.verdict, report.engine_starts)
    run_dir = Path(report.run_dir)
    console.print(f"Report: {run_dir / 'report.html'}  {run_dir / 'report.md'}  {run_dir / 'report.json'}")


def _verdict_lines(verdict: VerdictResult, engine_starts: dict[str, int] | None) -> None:
    """The verdict line and its reasons."""
    color = {"PASS": "green", "PARTIAL": "yellow", "FAIL": "red"}.get(verdict.verdict.value, "white")
    console.print(
        f"[bold {color}]Verdict: {verdict.verdict.value}[/] · recommended stack: "
        f"{verdict.recommended} · engine starts: {engine_starts}"
    )
    for reason in verdict.reasons:
        console.print(Text(f"  - {plain(reason, 300)}"))


@app.command("run")
def run_command(
    preset: Annotated[str | None, typer.Option("--preset", help="Run a preset (e.g. demo).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A run config YAML (docs/config.md).")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Folder for this run (default: runs/NAME-TIME).")
    ] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Certify a model on a reference and a candidate stack: env, install, smoke, consistency, bench."""
    if resume is not None:
        if preset or config or run_dir:
            raise UsageError(
                "--resume takes no --preset, --config or --run-dir",
                where="--resume",
                fix="the resumed run keeps the config it was started with",
            )
        cfg, ledger = resume_run(resume)
        preflight(cfg)
    else:
        if bool(preset) == bool(config):
            raise UsageError(
                "give exactly one of --preset NAME or --config FILE",
                where="stackcert run",
                fix="e.g. stackcert run --preset demo",
            )
        cfg = from_preset(preset) if preset else load_run_config(config or Path())
        preflight(cfg)  # bad input: one line and exit 2 before a run folder or an engine exists
        cfg, ledger = new_run(cfg, run_dir)
        note = redaction_note(cfg)
        if note:
            err_console.print(f"[dim]note: {note}[/]", highlight=False)
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        if want_json(json_out):
            verdict = execute(cfg, ledger)
        else:
            console.print(
                f"[bold]stackcert run[/] {cfg.name}: reference [cyan]{cfg.reference}[/] vs candidate "
                f"[cyan]{cfg.candidate}[/] → {ledger.run_dir}"
            )
            live_view = LiveProgress(ledger)
            with Live(live_view, console=console, refresh_per_second=4, transient=False):
                verdict = execute(cfg, ledger, live_view)
    except Interrupted as exc:
        err_console.print(
            f"[yellow]interrupted during {exc.step}[/]; engines stopped. Continue with: "
            f"stackcert run --resume {exc.run_dir}",
            highlight=False,
        )
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    layout = RunLayout(ledger.run_dir, cfg.reference, cfg.candidate)
    if layout.report_json.exists():
        report = load_report(layout.report_json)
        emit(report.model_dump(mode="json"), as_json=json_out, render=lambda _: _summary(report))
    else:  # the report step itself failed: the verdict is all there is
        data = {"run_dir": str(ledger.run_dir), "verdict": verdict.model_dump(mode="json")}
        emit(data, as_json=json_out, render=lambda _: _verdict_lines(verdict, None))
    raise typer.Exit(verdict.exit_code)
