"""What the commands share: the common options, run folders, the model from a preset, progress, colours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress as RichBar
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

from stackcert.cli.app import err_console, want_json
from stackcert.cli.model_cmd import RichProgress
from stackcert.config import ModelSpec, Preset
from stackcert.engines.base import ModelRef
from stackcert.jsonio import private_dir
from stackcert.progress import NullProgress, Progress

STYLE = {"pass": "green", "fail": "red", "crash": "bold red", "timeout": "yellow", "skipped": "dim"}

PresetOpt = Annotated[str, typer.Option("--preset", help="Preset holding the stacks and the model.")]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="A HF checkpoint folder instead of the preset's model.")
]
RunDirOpt = Annotated[
    Path | None, typer.Option("--run-dir", help="Where results go (default: runs/<kind>-<time>).")
]
ReferenceOpt = Annotated[
    str | None, typer.Option("--reference", help="Reference stack (default: the preset's).")
]
CandidateOpt = Annotated[
    str | None, typer.Option("--candidate", help="Candidate stack (default: the preset's).")
]
NoOfflineOpt = Annotated[bool, typer.Option("--no-offline", help="Skip Phase A (offline generation).")]


def default_run_dir(kind: str) -> Path:
    """A new run folder under runs/, created 0700 (it will hold logs, answers and configs)."""
    return private_dir(Path("runs") / f"{kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}")


def resolve_cli_model(preset: Preset, model_path: Path | None) -> ModelRef:
    """The preset's model, or the checkpoint folder given with --model (same dtype and length)."""
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
    """A status word in its colour."""
    return f"[{STYLE.get(status, 'white')}]{status}[/]"
