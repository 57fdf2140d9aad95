"""Opening a run: a new run directory with its config and ledger, or an earlier one to resume."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from stackcert.errors import UsageError
from stackcert.jsonio import envelope, private_dir, read_json, write_json_atomic
from stackcert.pipeline.config import RunConfig
from stackcert.pipeline.ledger import STATE_FILE, Ledger
from stackcert.pipeline.runner import PLAN, Pipeline
from stackcert.pipeline.verdict import VerdictResult
from stackcert.progress import Progress

CONFIG_FILE = "config.json"


def new_run(config: RunConfig, run_dir: Path | None = None) -> tuple[RunConfig, Ledger]:
    config.target.require_supported()
    if run_dir is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_dir = Path(config.output_dir) / f"{config.name}-{stamp}"
    if (run_dir / STATE_FILE).exists():
        raise UsageError(
            f"{run_dir} already holds a run",
            where=str(run_dir),
            fix=f"continue it with --resume {run_dir}, or pick another --run-dir",
        )
    private_dir(run_dir)
    write_json_atomic(
        run_dir / CONFIG_FILE, envelope("run-config", {"config": config.model_dump(mode="json")})
    )
    return config, Ledger.create(run_dir, PLAN)


def resume_run(run_dir: Path) -> tuple[RunConfig, Ledger]:
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise UsageError(
            f"no {CONFIG_FILE} in {run_dir}",
            where=str(run_dir),
            fix="give the folder of an earlier `stackcert run`",
        )
    config = RunConfig.model_validate(read_json(path)["config"])
    return config, Ledger.open(run_dir)


def execute(config: RunConfig, ledger: Ledger, progress: Progress | None = None) -> VerdictResult:
    return Pipeline(config, ledger.run_dir, ledger, progress).run()
