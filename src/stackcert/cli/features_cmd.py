"""`stackcert features --url URL --model NAME`: the feature matrix of a running OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from stackcert.answers import BadAnswer, clean
from stackcert.cli.app import JsonFlag, app, console, emit, err_console, want_json
from stackcert.config import StackSpec
from stackcert.engines.base import ModelRef
from stackcert.engines.endpoint import EndpointServer, list_models, read_key
from stackcert.errors import UsageError
from stackcert.features.models import FEATURE_IDS, FEATURE_TITLES, FeatureMatrix, FeatureOptions

OUTCOME_STYLE = {
    "supported": "green",
    "unsupported": "red",
    "not-applicable": "dim",
    "checkpoint-missing": "yellow",
    "disabled": "cyan",
    "error": "bold red",
}


class _Lines:
    """Progress for people: one line on stderr per probed feature."""

    def on_start(self, task: str, total: float | None = None) -> None:
        """How many features will be probed."""
        err_console.print(f"[dim]probing {int(total or 0)} features …[/]")

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        """Nothing: on_message says which feature finished."""
        pass

    def on_message(self, task: str, message: str) -> None:
        """'feature: outcome' on stderr."""
        err_console.print(f"[dim]  {escape(message)}[/]", highlight=False)

    def on_finish(self, task: str, status: str) -> None:
        """Nothing: the table follows."""
        pass


def check_url(url: str) -> str:
    """The URL without a trailing slash, or a UsageError naming what is wrong with it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--url {clean(url, 200)!r} is not an http(s) URL",
            where="--url",
            fix="give the server's base URL, e.g. http://127.0.0.1:8000",
        )
    try:
        _ = parts.port
    except ValueError:
        raise UsageError(
            f"--url {clean(url, 200)!r} has a bad port", where="--url", fix="use 1-65535"
        ) from None
    return url.strip().rstrip("/")


def connect(url: str, name: str, api_key_env: str | None) -> EndpointServer:
    """An EndpointServer for `url` that lists `name`; UsageError when it cannot be reached or lacks it."""
    stack = StackSpec(name="endpoint", engine="endpoint", url=url, api_key_env=api_key_env)
    server = EndpointServer(stack, name, read_key(stack))
    try:
        ids = list_models(server.base_url, server.headers, 15.0)
    except (httpx.HTTPError, BadAnswer, TimeoutError) as exc:
        raise UsageError(
            f"GET {server.base_url}/v1/models failed: {type(exc).__name__}: {clean(str(exc), 200)}",
            where=server.base_url,
            fix="check the URL and that the server is up (and --api-key-env for a keyed server)",
        ) from None
    if name not in ids:
        raise UsageError(
            f"{server.base_url} does not serve '{clean(name, 100)}' (it serves {clean(str(ids), 200)})",
            where="--model",
            fix="give one of the served model ids",
        )
    return server


def render(matrix: FeatureMatrix) -> None:
    """The matrix as a table, then the capacity baseline."""
    table = Table(title=f"features: {escape(matrix.served_model)} at {escape(matrix.base_url)}")
    for column in ("feature", "outcome", "mode", "why", "s"):
        table.add_column(column, overflow="fold")
    for r in matrix.features:
        qualified = r.basis in ("disabled", "error")
        style = OUTCOME_STYLE.get(r.basis if qualified else r.outcome, "white")
        label = f"{r.outcome} ({r.basis})" if qualified else r.outcome
        table.add_row(
            FEATURE_TITLES.get(r.feature, r.feature),
            f"[{style}]{label}[/]",
            escape(r.mode or ""),
            escape(r.evidence[:200]),
            f"{r.duration_s:.1f}",
        )
    console.print(table)
    cap = matrix.result("capacity")
    if cap is not None and cap.capacity is not None:
        for reason in cap.capacity.reasons:
            console.print(f"  [yellow]scaled down:[/] {escape(reason)}", highlight=False, soft_wrap=True)
        for step in cap.capacity.ramp:
            console.print(
                f"  concurrency {step.concurrency}: {step.ok} ok, {step.errors} errors, "
                f"{step.duration_s:.1f}s",
                highlight=False,
            )
    console.print(f"[dim]{len(matrix.features)} features in {matrix.duration_s:.1f}s[/]")


@app.command("features")
def features_command(
    url: Annotated[str, typer.Option("--url", help="Base URL of a running OpenAI-compatible server.")],
    model: Annotated[str, typer.Option("--model", help="The served model id (as /v1/models lists it).")],
    model_path: Annotated[
        Path | None,
        typer.Option("--model-path", help="The checkpoint folder (config.json); default: the server's own."),
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Variable holding the server's API key.")
    ] = None,
    budget: Annotated[float, typer.Option("--budget", help="Seconds for the whole matrix.")] = 90.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for one request.")] = 60.0,
    only: Annotated[
        list[str] | None, typer.Option("--feature", help="Probe only this feature (repeatable).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Probe which serving features a running server supports: graph mode, prefix caching, chunked
    prefill, expert parallelism, speculative decoding, multimodal, long context, structured output,
    capacity. Exit 0 when the matrix was produced (its outcomes say the rest), 2 on bad input."""
    from stackcert.features import features_document, probe_features

    base = check_url(url)
    if not model.strip():
        raise UsageError("--model is empty", where="--model", fix="give the served model id")
    if budget <= 0 or timeout <= 0:
        raise UsageError("--budget and --timeout must be positive", where="--budget/--timeout")
    unknown = sorted(set(only or []) - set(FEATURE_IDS))
    if unknown:
        raise UsageError(
            f"unknown feature(s): {', '.join(clean(u, 40) for u in unknown)}",
            where="--feature",
            fix=f"choose from: {', '.join(FEATURE_IDS)}",
        )
    if model_path is not None and not (model_path / "config.json").is_file():
        raise UsageError(
            f"no config.json in {model_path}", where="--model-path", fix="give a checkpoint folder"
        )
    server = connect(base, model, api_key_env)
    folder = model_path.expanduser().resolve() if model_path else Path("")
    ref = ModelRef(path=folder, served_name=model, tokenizer=folder)
    options = FeatureOptions(
        budget_s=budget, request_timeout_s=timeout, features=list(only) if only else list(FEATURE_IDS)
    )
    matrix = probe_features(
        server,
        server.stack,
        ref,
        options=options,
        progress=None if want_json(json_out) else _Lines(),
    )
    emit(features_document(matrix), as_json=json_out, render=lambda _: render(matrix))
