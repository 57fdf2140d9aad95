"""Opening a run: a new run directory with its config and ledger, or an earlier one to resume."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from stackcert.errors import UsageError
from stackcert.jsonio import envelope, private_dir, read_json, write_json_atomic
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.runner import PLAN, Pipeline
from stackcert.progress import Progress
from stackcert.runmodel.config import RunConfig
from stackcert.runmodel.layout import CONFIG_FILE, STATE_FILE
from stackcert.runmodel.verdict import VerdictResult
from stackcert.secrets import REDACTED


def new_folder(output_dir: str, name: str, folder: Path | None, marker: str, *, kind: str) -> Path:
    """A new run's or campaign's folder, `<output_dir>/<name>-<UTC stamp>` unless given (not yet created)."""
    if folder is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = Path(output_dir) / f"{name}-{stamp}"
    if (folder / marker).exists():
        raise UsageError(
            f"{folder} already holds a {kind}",
            where=str(folder),
            fix=f"continue it with --resume {folder}, or pick another --{kind}-dir",
        )
    return folder


def new_run(config: RunConfig, run_dir: Path | None = None) -> tuple[RunConfig, Ledger]:
    """A new run folder (private) holding the config and a fresh ledger."""
    run_dir = new_folder(config.output_dir, config.name, run_dir, STATE_FILE, kind="run")
    private_dir(run_dir)
    write_json_atomic(
        run_dir / CONFIG_FILE, envelope("run-config", {"config": config.model_dump(mode="json")})
    )
    return config, Ledger.create(run_dir, PLAN)


def resume_run(run_dir: Path) -> tuple[RunConfig, Ledger]:
    """The config and ledger of an earlier run, its secrets taken from the environment again."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise UsageError(
            f"no {CONFIG_FILE} in {run_dir}",
            where=str(run_dir),
            fix="give the folder of an earlier `stackcert run`",
        )
    config = restore_secrets(_read_config(path), where=str(path))
    return config, Ledger.open(run_dir)


def _read_config(path: Path) -> RunConfig:
    """The saved RunConfig; a damaged file is a one-line usage error, never a traceback."""
    fix = "start a new run (the run folder's config.json is stackcert's own; do not edit it)"
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read {CONFIG_FILE}: {type(exc).__name__}: {exc}", where=str(path), fix=fix
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise UsageError(f"{CONFIG_FILE} holds no 'config' object", where=str(path), fix=fix)
    try:
        return RunConfig.model_validate(data["config"])
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise UsageError(
            f"{CONFIG_FILE} does not match this stackcert version: {loc}: {first['msg']}"
            f" ({exc.error_count()} problem(s))",
            where=str(path),
            fix=fix,
        ) from None


def restore_secrets(config: RunConfig, *, where: str) -> RunConfig:
    """Secrets were redacted from config.json: take them from the environment again on resume."""
    stacks = {}
    for name, stack in config.stacks.items():
        env = dict(stack.env)
        for key, value in env.items():
            if value != REDACTED:
                continue
            if not os.environ.get(key):
                raise UsageError(
                    f"stack '{name}': env {key} was redacted from the saved config",
                    where=where,
                    fix=f"export {key}=<value> before --resume (secrets are never written to the run folder)",
                )
            env[key] = os.environ[key]
        if stack.url and REDACTED in stack.url:
            raise UsageError(
                f"stack '{name}': the key in its URL was redacted from the saved config",
                where=where,
                fix="give the key through api_key_env instead of the URL, and start a new run",
            )
        stacks[name] = stack.model_copy(update={"env": env})
    return config.model_copy(update={"stacks": stacks})


def execute(config: RunConfig, ledger: Ledger, progress: Progress | None = None) -> VerdictResult:
    """Run (or resume) the pipeline; the verdict."""
    return Pipeline(config, ledger, progress).run()
