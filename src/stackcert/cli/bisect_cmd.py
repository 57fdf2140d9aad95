"""`stackcert bisect`: find the operators of the candidate's operator library that break it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stackcert.cli.app import JsonFlag, app, console, emit, err_console, want_json
from stackcert.config import ModelSpec, OperatorSelection, load_preset
from stackcert.errors import ExitCode, UsageError
from stackcert.jsonio import envelope, write_json_atomic


class _Printer:
    """Progress lines on stderr (library code never imports rich)."""

    def on_start(self, task: str, total: float | None = None) -> None:
        err_console.print(f"[dim]{task}: starting the probe worker (loads the model once)[/]")

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        pass

    def on_message(self, task: str, message: str) -> None:
        err_console.print(f"[dim]{task}: probe — {message}[/]")

    def on_finish(self, task: str, status: str) -> None:
        err_console.print(f"[dim]{task}: {status}[/]")


def parse_faults(items: list[str]) -> dict[str, str]:
    faults: dict[str, str] = {}
    for item in items:
        op, sep, kind = item.partition("=")
        if not sep or not op or not kind:
            raise UsageError(
                f"bad --fault '{item}'", where="--fault", fix="write OP=crash|nan|drift, e.g. mm=crash"
            )
        faults[op.strip()] = kind.strip()
    return faults


def _render(data: dict[str, Any]) -> None:
    table = Table("#", "purpose", "excluded", "result", "reason", "s")
    for rec in data["log"]:
        shown = (
            ", ".join(rec["excluded"]) if len(rec["excluded"]) <= 6 else f"{len(rec['excluded'])} operators"
        )
        style = "green" if rec["passed"] else "red"
        table.add_row(
            str(rec["index"]),
            rec["purpose"],
            shown,
            f"[{style}]{rec['category']}[/]",
            rec["reason"][:60],
            f"{rec['duration_s']:.1f}",
        )
    console.print(table)
    colour = "green" if data["status"] in ("found", "no_failure") else "red"
    console.print(f"[bold {colour}]{data['status']}[/]: {data['message']}")
    console.print(
        f"probes used: {data['probes_used']} of {data['probe_budget']}; verified: {data['verified']}"
    )
    if data.get("candidate"):
        console.print(f"passing candidate: exclude {data['candidate']['operators']['exclude']}")


@app.command("bisect")
def bisect_command(
    preset: Annotated[
        str, typer.Option("--preset", help="Preset holding the stacks and the model.")
    ] = "fault",
    candidate: Annotated[
        str | None, typer.Option("--candidate", help="Stack to bisect (default: the preset's).")
    ] = None,
    reference: Annotated[
        str | None, typer.Option("--reference", help="Reference stack (default: the preset's).")
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option("--fault", help="TEST/DEMO ONLY (fault_ops): plant OP=crash|nan|drift."),
    ] = None,
    include: Annotated[
        str | None, typer.Option("--include", help="Only these operators (comma separated).")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="A HF checkpoint folder instead of the preset's.")
    ] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Where bisect.json goes.")] = None,
    timeout_per_probe: Annotated[
        float, typer.Option("--timeout-per-probe", help="Seconds per probe.", min=0.1)
    ] = 120.0,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Greedy tokens of the reference.", min=1)
    ] = 8,
    tol: Annotated[
        float | None, typer.Option("--tol", help="Largest |Δ log-prob| that passes.", min=0)
    ] = None,
    max_probes: Annotated[int | None, typer.Option("--max-probes", help="Probe budget.", min=1)] = None,
    json_out: JsonFlag = False,
) -> None:
    """Find the operators whose exclusion makes the candidate match the reference."""
    from stackcert.diagnose.probe import run_bisect
    from stackcert.models import resolve_model

    p = load_preset(preset)
    cand = p.stack(candidate or p.candidate)
    ref = p.stack(reference or p.reference)
    if cand.operators is None:
        raise UsageError(
            f"stack '{cand.name}' selects no operator library",
            where="--candidate",
            fix="choose a stack with an 'operators' section (e.g. --preset fault --candidate faulty)",
        )
    update: dict[str, Any] = {}
    if fault:
        update["faults"] = {**cand.operators.faults, **parse_faults(fault)}
    if include:
        update["include"] = [s.strip() for s in include.split(",") if s.strip()]
    if update:
        ops = OperatorSelection.model_validate({**cand.operators.model_dump(), **update})
        cand = cand.model_copy(update={"operators": ops})
    spec = p.model
    if model is not None:
        spec = ModelSpec(source="path", path=str(model), dtype=spec.dtype, max_model_len=spec.max_model_len)
    ref_model = resolve_model(spec)
    folder = run_dir or Path("runs") / f"bisect-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    report = run_bisect(
        ref,
        cand,
        ref_model,
        run_dir=folder,
        timeout_per_probe=timeout_per_probe,
        max_new_tokens=max_new_tokens,
        logprob_tol=tol,
        max_probes=max_probes,
        progress=None if want_json(json_out) else _Printer(),
    )
    write_json_atomic(folder / "bisect.json", envelope("bisect", report.model_dump(mode="json")))
    data = report.result.model_dump(mode="json")
    data["bisect_json"] = str(folder / "bisect.json")
    emit(data, as_json=json_out, render=_render)
    if report.result.status not in ("found", "no_failure"):
        raise typer.Exit(int(ExitCode.FAIL))
