"""`stackcert install`: print (--plan) or execute (--apply) the stack's install plan; --gate only checks."""

from __future__ import annotations

import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from stackcert.cli.app import JsonFlag, app, console, emit, want_json
from stackcert.env.probe import probe_host
from stackcert.env.vendors import Vendor, get_vendor
from stackcert.errors import ExitCode, UsageError
from stackcert.install.apply import InstallResult, apply_plan, make_context, plan_install
from stackcert.install.gate import GateResult, run_import_gate
from stackcert.install.plan import InstallPlan
from stackcert.install.spec import StackInstall, default_stack, engine_only, load_install_config
from stackcert.install.wheels import load_wheel_table
from stackcert.jsonio import envelope


def _render_plan(plan: InstallPlan) -> None:
    console.print(
        f"[bold]install plan[/] stack={plan.stack} vendor={plan.vendor or 'none (CPU)'} python={plan.python}",
        highlight=False,
    )
    console.print(f"protected (pinned by {plan.constraints_file}): {plan.protected or 'nothing installed'}")
    for probe in plan.network:
        state = f"{probe.latency_ms} ms" if probe.reachable else f"[red]unreachable[/] {probe.error}"
        console.print(f"  network {probe.url}: {state}", highlight=False)
    for pkg in plan.packages:
        console.print(f"\n[bold]{pkg.name}[/] ({pkg.role}) — {escape(pkg.source)}", highlight=False)
        if pkg.skipped:
            console.print(f"  [yellow]skipped:[/] {escape(pkg.skipped)}", highlight=False)
        for step in pkg.steps:
            console.print(
                f"  {step.kind:5} $ {escape(shlex.join(step.argv))}", highlight=False, soft_wrap=True
            )
        for key, value in pkg.env.items():
            console.print(f"  env   {key}={value}", highlight=False)
        for note in pkg.notes:
            console.print(f"  note  {escape(note)}", highlight=False)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def _render_gate(gate: GateResult) -> None:
    table = Table(title=f"import gate: {'PASS' if gate.passed else 'FAIL'}")
    for col in ("package", "role", "status", "version", "error / notes"):
        table.add_column(col, overflow="fold")
    for p in gate.packages:
        colour = "green" if p.status == "pass" else "red"
        table.add_row(
            p.name,
            p.role,
            f"[{colour}]{p.status}[/]",
            p.version or "",
            "\n".join([escape(x) for x in [p.error, *p.notes] if x]),
        )
    console.print(table)
    if gate.reason:
        console.print(f"[red]gate failed:[/] {escape(gate.reason)}", highlight=False)


def _render_result(result: InstallResult) -> None:
    for pkg in result.packages:
        colour = {"pass": "green", "skipped": "yellow"}.get(pkg.status, "red")
        console.print(f"[{colour}]{pkg.status:7}[/] {pkg.name} {escape(pkg.reason or '')}", highlight=False)
    if result.gate:
        _render_gate(result.gate)


class _ConsoleProgress:
    """Progress hooks for people: one dim line per step (library code never imports rich)."""

    def on_start(self, task: str, total: float | None = None) -> None:
        console.print(f"[bold]{task}[/] ({int(total or 0)} steps)", highlight=False)

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        pass

    def on_message(self, task: str, message: str) -> None:
        console.print(f"  [dim]{task}: {message}[/]", highlight=False, soft_wrap=True)

    def on_finish(self, task: str, status: str) -> None:
        console.print(f"[bold]{task}[/]: {status}", highlight=False)


def _vendor(name: str | None, detected: str | None) -> Vendor | None:
    key = name if name is not None else detected
    if key is None or key.lower() in ("cpu", "none"):
        return None
    return get_vendor(key)


@app.command("install")
def install_command(
    json_out: JsonFlag = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="Execute the plan (default: only print it).")
    ] = False,
    plan_only: Annotated[bool, typer.Option("--plan", help="Print the plan (the default).")] = False,
    gate_only: Annotated[bool, typer.Option("--gate", help="Only run the import gate.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Install config YAML (packages).")] = None,
    engine: Annotated[bool, typer.Option("--engine-only", help="Only the engine (vLLM).")] = False,
    vendor: Annotated[
        str | None, typer.Option("--vendor", help="Accelerator vendor (default: detected).")
    ] = None,
    python: Annotated[
        Path | None, typer.Option("--python", help="Target interpreter (default: this one).")
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Install only from --wheel-dir.")] = False,
    wheel_dir: Annotated[Path | None, typer.Option("--wheel-dir", help="Folder of local wheels.")] = None,
    wheel_table: Annotated[Path | None, typer.Option("--wheel-table", help="Wheel table YAML.")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Where logs and install.json go.")] = None,
    allow_torch_change: Annotated[
        bool, typer.Option("--allow-torch-change", help="Let a step replace the installed torch/triton.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per import check.", min=1)] = 180.0,
    network_timeout: Annotated[float, typer.Option("--network-timeout", help="Seconds per URL probe.")] = 3.0,
) -> None:
    """Plan, apply or gate the installation of the stack (vLLM, FlagTree, FlagGems, FlagCX, plugin)."""
    if sum([apply, plan_only, gate_only]) > 1:
        raise UsageError("choose one of --plan, --apply, --gate", where="install")
    if offline and wheel_dir is None:
        raise UsageError("--offline needs --wheel-dir DIR", where="--offline", fix="add --wheel-dir DIR")
    stack: StackInstall = (
        load_install_config(config) if config else (engine_only() if engine else default_stack())
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    rdir = run_dir or Path("runs") / f"install-{stamp}"
    target = python or Path(sys.executable)
    if gate_only:
        gate = run_import_gate(stack, python=target, timeout=timeout, log_dir=rdir / "install" / "gate")
        emit(
            envelope("install-gate", gate.model_dump(mode="json")),
            as_json=json_out,
            render=lambda _: _render_gate(gate),
        )
        raise typer.Exit(int(ExitCode.PASS if gate.passed else ExitCode.FAIL))
    host = probe_host(accelerators=vendor is None)
    # --plan installs nothing, so it writes nothing either: the probe's log goes to a temp folder.
    scratch = tempfile.TemporaryDirectory(prefix="stackcert-plan-") if not apply else None
    ctx = make_context(
        probe_log=Path(scratch.name) / "target.log" if scratch else None,
        host=host,
        vendor=_vendor(vendor, host.vendor),
        python=target,
        run_dir=rdir,
        protect=stack.protect,
        offline=offline,
        wheel_dir=wheel_dir,
        network_timeout=network_timeout,
    )
    plan = plan_install(stack, ctx, load_wheel_table(wheel_table))
    if scratch is not None:
        scratch.cleanup()
    if not apply:
        emit(
            envelope("install-plan", plan.model_dump(mode="json")),
            as_json=json_out,
            render=lambda _: _render_plan(plan),
        )
        return
    if not want_json(json_out):
        _render_plan(plan)
    progress = None if want_json(json_out) else _ConsoleProgress()
    result = apply_plan(
        plan, run_dir=rdir, allow_torch_change=allow_torch_change, gate_timeout=timeout, progress=progress
    )
    emit(
        envelope("install", result.model_dump(mode="json")),
        as_json=json_out,
        render=lambda _: _render_result(result),
    )
    raise typer.Exit(int(ExitCode.PASS if result.passed else ExitCode.FAIL))
