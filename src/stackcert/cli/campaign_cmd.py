"""`stackcert campaign`: a matrix of certifications on Ray, with a live table of the runs."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stackcert.campaign.config import load_campaign
from stackcert.campaign.runner import run_campaign
from stackcert.campaign.session import new_campaign, resume_campaign
from stackcert.campaign.state import CAMPAIGN_FILE, INDEX_FILE, CampaignState
from stackcert.cli.app import JsonFlag, app, console, emit, err_console, want_json
from stackcert.errors import ExitCode, UsageError
from stackcert.jsonio import read_json

_STYLE = {"PASS": "green", "PARTIAL": "yellow", "FAIL": "red", "error": "bold red", "timeout": "red"}
_SEVERITY = [int(ExitCode.FAIL), int(ExitCode.PARTIAL), int(ExitCode.RETEST), int(ExitCode.PASS)]


def current_step(run_dir: Path) -> str:
    """The step a run is in now, read from its ledger ('' before it starts)."""
    try:
        steps = read_json(run_dir / "state.json").get("steps", {})
    except (OSError, ValueError, AttributeError):
        return "waiting for resources"
    running = [
        s.get("id", "") for s in steps.values() if isinstance(s, dict) and s.get("status") == "running"
    ]
    return running[0] if running else ""


class CampaignView:
    """The runs as a rich table: status or verdict, the running step, perf ratio, time, error."""

    def __init__(self, state: CampaignState) -> None:
        self.state = state
        self._lock = threading.Lock()

    def update(self, state: CampaignState) -> None:
        """Take the latest records."""
        with self._lock:
            self.state = state

    def __rich__(self) -> Table:
        with self._lock:
            entries = list(self.state.entries)
        table = Table(title=f"campaign {self.state.name}", title_justify="left")
        for column in ("run", "status", "step / error", "ratio", "time"):
            table.add_column(column, overflow="fold")
        for e in entries:
            shown = e.verdict or e.status
            note = e.error or (current_step(Path(e.run_dir)) if e.status == "running" else "")
            table.add_row(
                Text(e.id),
                Text(shown, style=_STYLE.get(shown, "cyan" if e.status == "running" else "")),
                Text(note[:200], style="dim"),
                f"{e.perf_ratio:.2f}" if e.perf_ratio is not None else "",
                f"{e.duration_s:.0f}s" if e.duration_s is not None else "",
            )
        return table


def exit_code(state: CampaignState) -> int:
    """1 when a run gave no verdict, else the worst verdict's code (FAIL, PARTIAL, RETEST, PASS)."""
    if any(e.status != "done" for e in state.entries):
        return int(ExitCode.FAIL)
    codes = {e.exit_code if e.exit_code is not None else int(ExitCode.FAIL) for e in state.entries}
    return next((c for c in _SEVERITY if c in codes), int(ExitCode.FAIL))


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _render(data: dict[str, Any]) -> None:
    folder = Path(data["campaign_dir"])
    counts = ", ".join(f"{k}: {v}" for k, v in CampaignState.model_validate(data).counts().items())
    console.print(f"[bold]campaign {data['name']}[/] · {counts}")
    console.print(f"Index: {folder / INDEX_FILE}  {folder / CAMPAIGN_FILE}")


@app.command("campaign")
def campaign_command(
    file: Annotated[Path | None, typer.Argument(help="The campaign YAML (docs/campaign.md).")] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="An existing Ray cluster (default: an embedded local Ray)."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the campaign in this folder.")
    ] = None,
    campaign_dir: Annotated[
        Path | None,
        typer.Option("--campaign-dir", help="Folder of the campaign (default: campaigns/NAME-TIME)."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Certify a matrix of (model × stack pair × target) runs as Ray tasks; an HTML index of the verdicts."""
    if resume is not None:
        if file is not None or campaign_dir is not None:
            raise UsageError(
                "--resume takes no CAMPAIGN.yaml or --campaign-dir",
                where="--resume",
                fix="the resumed campaign keeps the plan it was started with",
            )
        state, entries, ray_spec = resume_campaign(resume)
    else:
        if file is None:
            raise UsageError(
                "give a campaign file, or --resume DIR",
                where="stackcert campaign",
                fix="e.g. stackcert campaign campaign.yaml",
            )
        state, entries, ray_spec = new_campaign(load_campaign(file), campaign_dir)
    folder = Path(state.campaign_dir)
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        if want_json(json_out):
            state = run_campaign(state, entries, address=address, ray_spec=ray_spec)
        else:
            console.print(f"[bold]stackcert campaign[/] {state.name}: {len(entries)} runs → {folder}")
            view = CampaignView(state)
            with Live(view, console=err_console, refresh_per_second=2, transient=False):
                state = run_campaign(
                    state, entries, address=address, ray_spec=ray_spec, on_change=view.update
                )
    except KeyboardInterrupt:
        err_console.print(
            f"[yellow]interrupted[/]; runs stopped. Continue with: stackcert campaign --resume {folder}",
            highlight=False,
        )
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(read_json(folder / CAMPAIGN_FILE), as_json=json_out, render=_render)
    raise typer.Exit(exit_code(state))
