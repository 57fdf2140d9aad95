"""Where stackcert keeps its cache and its runs."""

from __future__ import annotations

import os
from pathlib import Path


def stackcert_home() -> Path:
    """`$STACKCERT_HOME`, default `~/.cache/stackcert`."""
    env = os.environ.get("STACKCERT_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stackcert"


def models_dir() -> Path:
    """Where prepared models are cached: `<stackcert home>/models`."""
    return stackcert_home() / "models"


def logs_dir() -> Path:
    """Where stackcert keeps its logs: `<stackcert home>/logs`."""
    return stackcert_home() / "logs"


def stack_folder(run_dir: Path, stack: str) -> Path:
    """The folder of one stack's files in any run folder: `<run_dir>/stacks/<stack>` (see RunLayout)."""
    return run_dir / "stacks" / stack
