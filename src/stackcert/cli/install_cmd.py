"""`stackcert install`: print (--plan) or execute (--apply) the stack's install plan; --gate only checks."""

from __future__ import annotations

import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.table import Table

from stackcert.cli.app import JsonFlag, app, console, emit, want_json
from stackcert.env.network import NetworkConfig
from stackcert.env.probe import probe_host
from stackcert.env.vendors import Vendor, get_vendor
from stackcert.errors import ExitCode, UsageError
from stackcert.install.apply import InstallResult, apply_plan, make_context, plan_install
from stackcert.install.gate import GateResult, run_import_gate
from stackcert.install.plan import InstallPlan
from stackcert.install.spec import FLAGCX_HOME, StackInstall, default_stack, engine_only, load_install_config
from stackcert.install.wheels import load_wheel_table
from stackcert.jsonio import envelope, write_json_atomic


def _render_plan(plan: InstallPlan) -> None:
    console.print(
        f"[bold]install plan[/] stack={plan.stack} vendor={plan.vendor or 'none (CPU)'} python={plan.python}",
        highlight=False,
    )
    console.print(f"protected (pinned by {plan.constraints_file}): {plan.protected or 'nothing installed'}")
    for probe in plan.network:
        state = (
            f"{probe.latency_ms} ms" if probe.reachable else f"[red]unusable[/] {escape(probe.error or '')}"
        )
        console.print(f"  network {probe.kind:6} {probe.url}: {state}", highlight=False)
    if plan.index_url or plan.github_prefix:
        console.print(
            f"  using index {plan.index_url or '-'}, GitHub {plan.github_prefix or '-'}"
            + (f", proxy {plan.proxy}" if plan.proxy else ""),
            highlight=False,
        )
    for pkg in plan.packages:
        console.print(f"\n[bold]{pkg.name}[/] ({pkg.role}) — {escape(pkg.source)}", highlight=False)
        if pkg.skipped:
            console.print(f"  [yellow]skipped:[/] {escape(pkg.skipped)}", highlight=False)
        for step in pkg.steps:
            env = "".join(f"{k}={shlex.quote(v)} " for k, v in step.env.items() if not k.endswith("_proxy"))
            console.print(
                f"  {step.kind:5} $ {escape(env + shlex.join(step.argv))}", highlight=False, soft_wrap=True
            )
        for key, value in pkg.env.items():
            console.print(f"  env   {key}={value}", highlight=False)
        for note in pkg.notes:
            console.print(f"  note  {escape(note)}", highlight=False)
    rt = plan.runtime
    if rt.vendor:
        console.print(f"\n[bold]runtime on {rt.vendor}[/] (applied to the stacks on this vendor)")
        for key, value in rt.env.items():
            console.print(f"  env   {key}={value}", highlight=False)
        if rt.cli_args:
            console.print(f"  vllm  {escape(shlex.join(rt.cli_args))}", highlight=False)
        for note in rt.notes:
            console.print(f"  note  {escape(note)}", highlight=False)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


_ASSUME_KEYS = ("torch", "triton", "python", "glibc", "arch")


def _assumptions(items: list[str] | None) -> dict[str, str]:
    """--assume KEY=VALUE pairs; a bad one is a usage error (exit 2)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in _ASSUME_KEYS or not value.strip():
            raise UsageError(
                f"bad --assume {item!r}",
                where="--assume",
                fix=f"use KEY=VALUE with KEY one of {', '.join(_ASSUME_KEYS)}",
            )
        out[key] = value.strip()
    return out


def _urls(items: list[str] | None, flag: str) -> list[str]:
    """Mirror URLs must be http(s) URLs with a host; a bad one is a usage error (exit 2)."""
    for url in items or []:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"bad {flag} {url!r}: not an http(s) URL", where=flag, fix="e.g. https://mirror.example/"
            )
    return list(items or [])


def _network(
    stack: StackInstall, pypi: list[str] | None, github: list[str] | None, proxy: str | None
) -> NetworkConfig:
    """The stack's network config with the command-line chains put first."""
    base = stack.network or NetworkConfig()
    if proxy is not None:
        _urls([proxy], "--proxy")
    return NetworkConfig(
        pypi=[*_urls(pypi, "--pypi-mirror"), *base.pypi],
        github=[*_urls(github, "--github-mirror"), *base.github],
        proxy=proxy or base.proxy,
    )


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
        """Announce a task."""
        console.print(f"[bold]{task}[/] ({int(total or 0)} steps)", highlight=False)

    def on_advance(self, task: str, advance: float = 1.0, **metrics: float) -> None:
        """Nothing: one line per step is enough."""
        pass

    def on_message(self, task: str, message: str) -> None:
        """One dim line."""
        console.print(f"  [dim]{task}: {message}[/]", highlight=False, soft_wrap=True)

    def on_finish(self, task: str, status: str) -> None:
        """The task's verdict."""
        console.print(f"[bold]{task}[/]: {status}", highlight=False)


def _vendor(name: str | None, detected: str | None) -> Vendor | None:
    """The vendor from --vendor (or the detected one); 'cpu'/'none' means no accelerator."""
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
    network_timeout: Annotated[
        float, typer.Option("--network-timeout", help="Seconds per URL probe.", min=0.1)
    ] = 3.0,
    pypi_mirror: Annotated[
        list[str] | None, typer.Option("--pypi-mirror", help="PyPI simple index to try first (repeatable).")
    ] = None,
    github_mirror: Annotated[
        list[str] | None,
        typer.Option("--github-mirror", help="Prefix standing for https://github.com/ (repeatable)."),
    ] = None,
    proxy: Annotated[
        str | None, typer.Option("--proxy", help="HTTP(S) proxy for probes, pip and git.")
    ] = None,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Do not probe the network chains.")] = False,
    flagcx_dir: Annotated[
        str, typer.Option("--flagcx-dir", help="Where FlagCX is built (the flagos preset's FLAGCX_PATH).")
    ] = FLAGCX_HOME,
    assume: Annotated[
        list[str] | None,
        typer.Option(
            "--assume", help="Plan for a target: torch=, triton=, python=, glibc=, arch= (repeatable)."
        ),
    ] = None,
) -> None:
    """Plan, apply or gate the installation of the stack (vLLM, FlagTree, FlagGems, FlagCX, plugin)."""
    if sum([apply, plan_only, gate_only]) > 1:
        raise UsageError("choose one of --plan, --apply, --gate", where="install")
    if offline and wheel_dir is None:
        raise UsageError("--offline needs --wheel-dir DIR", where="--offline", fix="add --wheel-dir DIR")
    assumed = _assumptions(assume)
    if assumed and (apply or gate_only):
        raise UsageError(
            "--assume plans for another target; it cannot be applied or gated here",
            where="--assume",
            fix="drop --assume, or use it with --plan",
        )
    host = None if gate_only else probe_host(accelerators=vendor is None)
    target_vendor = _vendor(vendor, host.vendor if host else None)
    stack: StackInstall = (
        load_install_config(config)
        if config
        else (engine_only(target_vendor) if engine else default_stack(target_vendor))
    )
    net = _network(stack, pypi_mirror, github_mirror, proxy)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    rdir = run_dir or Path("runs") / f"install-{stamp}"
    target = python or Path(sys.executable)
    if gate_only:
        gate = run_import_gate(stack, python=target, timeout=timeout, log_dir=rdir / "install" / "gate")
        write_json_atomic(rdir / "install" / "gate" / "gate.json", gate)  # --gate has no install.json
        emit(
            envelope("install-gate", gate.model_dump(mode="json")),
            as_json=json_out,
            render=lambda _: _render_gate(gate),
        )
        raise typer.Exit(int(ExitCode.PASS if gate.passed else ExitCode.FAIL))
    assert host is not None
    # --plan installs nothing, so it writes nothing either: the probe's log goes to a temp folder.
    scratch = tempfile.TemporaryDirectory(prefix="stackcert-plan-") if not apply else None
    ctx = make_context(
        probe_log=Path(scratch.name) / "target.log" if scratch else None,
        host=host,
        vendor=target_vendor,
        python=target,
        run_dir=rdir,
        protect=stack.protect,
        offline=offline,
        wheel_dir=wheel_dir,
        probe_network=not no_probe,
        network_timeout=network_timeout,
        network=net,
        flagcx_home=flagcx_dir,
        assume=assumed,
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
