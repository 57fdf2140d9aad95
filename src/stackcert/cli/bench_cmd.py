"""`stackcert bench`: serving benchmark of one stack (or of a server already running at --url)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from stackcert.bench.profiles import Profile, resolve_profile
from stackcert.bench.records import BenchResult
from stackcert.bench.runner import run_bench
from stackcert.cli.app import JsonFlag, app, console, emit, err_console, want_json
from stackcert.cli.common import (
    ModelOpt,
    PresetOpt,
    RunDirOpt,
    default_run_dir,
    resolve_cli_model,
    status_text,
)
from stackcert.config import load_preset
from stackcert.errors import ExitCode, UsageError
from stackcert.jsonio import envelope, write_json_atomic
from stackcert.paths import stack_folder
from stackcert.progress import NullProgress, Progress


class LiveBench:
    """Rich rendering of the bench progress hooks: one bar per run with its live numbers."""

    def __init__(self, bar: RichBar) -> None:
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def on_start(self, task: str, total: float | None = None) -> None:
        self.tasks[task] = self.bar.add_task(task, total=total, stats="")

    def on_advance(self, task: str, advance: float = 1.0, **m: float) -> None:
        if task not in self.tasks:
            self.on_start(task)
        stats = (
            f"{m.get('req_s', 0):.2f} req/s  {m.get('tok_s', 0):.1f} tok/s  "
            f"TTFT {m.get('ttft_ms', 0):.0f} ms  ITL {m.get('itl_ms', 0):.1f} ms"
        )
        self.bar.update(self.tasks[task], advance=advance, stats=stats)

    def on_message(self, task: str, message: str) -> None:
        err_console.print(f"[dim]{task}: {message}[/]")

    def on_finish(self, task: str, status: str) -> None:
        if task in self.tasks:
            self.bar.update(self.tasks[task], description=f"{task} {status_text(status)}")


def render(data: dict[str, Any]) -> None:
    table = Table(title=f"bench {data['model']} @ {data['base_url']}: {data['status']}")
    cols = (
        "profile",
        "point",
        "run",
        "ok/fail",
        "req/s",
        "out tok/s",
        "TTFT ms mean/p99",
        "TPOT ms",
        "ITL ms mean/p99",
        "E2EL ms",
    )
    for c in cols:
        table.add_column(c, justify="left" if c in ("profile", "point") else "right")
    for p in data["points"]:
        for run in p["runs"]:
            m = run["metrics"]
            ttft, itl = m["ttft_ms"], m["itl_ms"]
            table.add_row(
                p["profile"],
                p["point"],
                f"{run['repeat'] + 1}{' (discarded)' if run['discarded'] else ''}",
                f"{m['completed']}/{m['failed']}",
                f"{m['request_throughput']:.2f}",
                f"{m['output_throughput']:.1f}",
                f"{ttft['mean']:.1f}/{ttft['percentiles'].get('p99', 0):.1f}",
                f"{m['tpot_ms']['mean']:.2f}",
                f"{itl['mean']:.2f}/{itl['percentiles'].get('p99', 0):.2f}",
                f"{m['e2el_ms']['mean']:.0f}",
            )
    console.print(table)
    for prof in data["profiles"]:
        if prof.get("scaled_from"):
            console.print(
                f"[yellow]{prof['name']}[/] scaled from {prof['scaled_from']}: {prof['scale_reason']}"
            )
    if data.get("reason"):
        console.print(f"{status_text(data['status'])}: {data['reason']}")
    if data.get("log_excerpt"):
        console.print(data["log_excerpt"], markup=False, highlight=False)
    console.print(f"records: {data.get('records_path')}")


@app.command("bench")
def bench(
    stack: Annotated[
        str | None, typer.Option("--stack", help="Stack name from the preset, or a stack YAML.")
    ] = None,
    preset: PresetOpt = "demo",
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", help="Built-in profile name or YAML file (repeatable). Default: smoke."),
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Benchmark a server already running here.")] = None,
    model: ModelOpt = None,
    run_dir: RunDirOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Measure TTFT, TPOT, ITL, E2EL and throughput (vLLM's definitions) with streaming requests."""
    if stack is None and url is None:
        raise UsageError(
            "nothing to benchmark", where="stackcert bench", fix="give --stack NAME or --url URL"
        )
    profiles: list[Profile] = [p for name in (profile or ["smoke"]) for p in resolve_profile(name)]
    loaded = load_preset(preset)
    model_ref = resolve_cli_model(loaded, model)
    root = run_dir or default_run_dir("bench")
    with _progress(json_out) as prog:
        if url is not None:
            out_dir = root / "bench"
            result = run_bench(url, model_ref, profiles, out_dir=out_dir, progress=prog)
        else:
            from stackcert.config import resolve_stack
            from stackcert.engines.base import ServerTimeouts
            from stackcert.pipeline.servers import ServerPool

            spec = resolve_stack(stack or "", preset)
            stack_dir = stack_folder(root, spec.name)
            out_dir = stack_dir / "bench"
            # the same pool as `stackcert run` starts and stops the engine
            pool = ServerPool(None, start_timeout_s=ServerTimeouts().absolute, progress=prog)
            with pool:
                server = pool.start(spec, model_ref, stack_dir)
                result = run_bench(server, model_ref, profiles, out_dir=out_dir, progress=prog)
    # --json prints the summary file as written (with the envelope): the same document as bench.json
    document = envelope("bench", result.model_dump(mode="json"))
    write_json_atomic(out_dir / "bench.json", document)
    emit(document, as_json=json_out, render=render)
    raise typer.Exit(_exit_code(result))


def _exit_code(result: BenchResult) -> int:
    return int(ExitCode.PASS if result.status == "pass" else ExitCode.FAIL)


class _progress:
    """Live bars on stderr for people; nothing for --json."""

    def __init__(self, json_out: bool) -> None:
        self.json_out = json_out
        self.bar: RichBar | None = None

    def __enter__(self) -> Progress:
        if want_json(self.json_out):
            return NullProgress()
        self.bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            console=err_console,
        )
        self.bar.start()
        return LiveBench(self.bar)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
