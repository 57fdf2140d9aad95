"""`stackcert env`: probe this host (Python, glibc, CPU, memory, disk, accelerators, stack packages)."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from stackcert.cli.app import JsonFlag, app, console, emit
from stackcert.env.probe import HostInfo, probe_host
from stackcert.env.vendors import VendorRuntime, get_vendor, vendor_runtime
from stackcert.jsonio import envelope


def _render(info: HostInfo) -> None:
    host = Table(title="Host", show_header=False)
    host.add_column("key", style="bold")
    host.add_column("value")
    rows = [
        ("python", f"{info.python} ({info.python_executable})"),
        ("glibc", info.glibc or "unknown"),
        ("os / arch", f"{info.os_release or info.os} / {info.arch}"),
        ("cpu", f"{info.cpu_model or '?'} × {info.cpu_count or '?'}"),
        ("memory", f"{info.memory_available_gib} GiB free of {info.memory_total_gib} GiB"),
        ("disk", f"{info.disk_free_gib} GiB free at {info.disk_path}"),
    ]
    for key, value in rows:
        host.add_row(key, value)
    console.print(host)
    acc = Table(title="Accelerators")
    for col in ("vendor", "count", "devices", "driver", "visible-devices var", "FlagCX", "FlagTree"):
        acc.add_column(col)
    for a in info.accelerators:
        names = ", ".join(sorted({d.name for d in a.devices}))
        mem = a.devices[0].memory_total_mib if a.devices else None
        acc.add_row(
            a.display,
            str(a.count),
            f"{names} ({mem} MiB)" if mem else names,
            a.driver_version or "?",
            f"{a.visible_devices_env}={a.visible_devices}" if a.visible_devices else a.visible_devices_env,
            a.flagcx_adaptor or "-",
            a.flagtree_backend or "-",
        )
    if not info.accelerators:
        acc.add_row("none (CPU only)", "0", "", "", "", "", "")
    console.print(acc)
    pkgs = Table(title="Stack packages")
    for col in ("module", "version", "distribution", "note"):
        pkgs.add_column(col)
    for p in info.packages.values():
        pkgs.add_row(p.module, p.version or "[dim]not installed[/]", p.distribution or "", p.note or "")
    console.print(pkgs)
    for note in info.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def _render_runtime(runtimes: dict[str, VendorRuntime]) -> None:
    """Each vendor's runtime env and vLLM arguments (what the stacks on it get)."""
    for key, rt in runtimes.items():
        console.print(f"[bold]runtime on {key}[/]", highlight=False)
        for name, value in rt.env.items():
            console.print(f"  env   {name}={value}", highlight=False)
        if rt.cli_args:
            console.print(f"  vllm  {escape(shlex.join(rt.cli_args))}", highlight=False)
        if not rt.env and not rt.cli_args:
            console.print("  (no vendor-specific settings)", highlight=False)
        for note in rt.notes:
            console.print(f"  note  {escape(note)}", highlight=False)


@app.command("env")
def env_command(
    json_out: JsonFlag = False,
    tool_timeout: Annotated[
        float, typer.Option("--tool-timeout", help="Seconds each vendor tool may take.", min=0.1)
    ] = 5.0,
    vendor: Annotated[
        str | None, typer.Option("--vendor", help="Also show this vendor's runtime settings.")
    ] = None,
) -> None:
    """Probe the host: Python, glibc, CPU, memory, disk, accelerators and stack package versions."""
    extra = get_vendor(vendor) if vendor else None
    info = probe_host(tool_timeout=tool_timeout)
    keys = [a.vendor for a in info.accelerators] + ([extra.key] if extra else [])
    runtimes = {k: vendor_runtime(k) for k in dict.fromkeys(keys)}

    def render(_: object) -> None:
        _render(info)
        _render_runtime(runtimes)

    emit(
        envelope(
            "env",
            {
                "host": info.model_dump(mode="json"),
                "runtime": {k: v.model_dump(mode="json") for k, v in runtimes.items()},
            },
        ),
        as_json=json_out,
        render=render,
    )
