"""The install plan: per package its source, the exact commands, the env it needs, and notes.

`--plan` prints this object; `--apply` executes exactly this object, so what was shown is what runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from stackcert.env.network import DEFAULT_PYPI_MIRRORS, UrlProbe, pick_mirror, probe_urls
from stackcert.env.probe import HostInfo
from stackcert.env.vendors import Vendor
from stackcert.errors import UsageError
from stackcert.install.spec import GateRequirement, PackageSpec, StackInstall
from stackcert.install.wheels import Target, WheelTable, select_wheel


class PlanStep(BaseModel):
    package: str
    kind: Literal["pip", "git", "build"]
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = 1800.0
    pip_args: list[str] = Field(default_factory=list, description="pip steps: args checked by the dry run")


class PackagePlan(BaseModel):
    name: str
    role: str
    source: str = Field(description="human-readable source: PyPI name+version, wheel, git URL@commit")
    steps: list[PlanStep] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    gate: GateRequirement | None = None
    skipped: str | None = Field(None, description="why this package cannot be installed here")
    notes: list[str] = Field(default_factory=list)


class InstallPlan(BaseModel):
    stack: str
    python: str
    vendor: str | None
    protected: dict[str, str] = Field(description="installed versions pinned by the constraints file")
    constraints_file: str
    offline: bool
    wheel_dir: str | None = None
    index_url: str | None = None
    work_dir: str
    network: list[UrlProbe] = Field(default_factory=list)
    packages: list[PackagePlan]
    notes: list[str] = Field(default_factory=list)


class PlanContext(BaseModel):
    """Everything the planner needs to know about the target; no I/O happens in the planner itself."""

    host: HostInfo
    vendor: Vendor | None
    python: str
    protected: dict[str, str]
    constraints_file: Path
    work_dir: Path
    offline: bool = False
    wheel_dir: Path | None = None
    probe_network: bool = True
    network_timeout: float = 3.0
    pip_timeout: float = 1800.0


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def _pip(ctx: PlanContext, name: str, reqs: list[str], index_args: list[str]) -> PlanStep:
    args = [*index_args, *reqs]
    argv = [
        ctx.python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--constraint",
        str(ctx.constraints_file),
        *args,
    ]
    return PlanStep(package=name, kind="pip", argv=argv, timeout_s=ctx.pip_timeout, pip_args=args)


def _local_index(ctx: PlanContext) -> list[str]:
    return ["--no-index", "--find-links", str(ctx.wheel_dir)]


def _plan_package(
    pkg: PackageSpec, ctx: PlanContext, index_args: list[str], table: WheelTable, values: dict[str, str]
) -> PackagePlan:
    src = pkg.source
    plan = PackagePlan(name=pkg.name, role=pkg.role, source="", gate=pkg.gate)
    vals = {**values, "src": str(ctx.work_dir / "src" / pkg.name)}
    plan.env = {k: _fill(v, vals) for k, v in pkg.env.items()}
    if src.kind == "pypi":
        plan.source = f"PyPI {src.requirement}"
        plan.steps.append(_pip(ctx, pkg.name, [src.requirement or pkg.dist], index_args))
    elif src.kind == "wheel":
        path = Path(_fill(src.path or "", vals)).expanduser()
        plan.source = f"wheel {path}"
        if not path.exists():
            plan.skipped = f"wheel file not found: {path}"
        plan.steps.append(_pip(ctx, pkg.name, [str(path)], ["--no-index"] if ctx.offline else index_args))
    elif src.kind == "wheel_table":
        target = Target(
            vendor=ctx.vendor.key if ctx.vendor else None,
            python=ctx.host.python,
            arch=ctx.host.arch,
            glibc=ctx.host.glibc,
            torch=ctx.protected.get("torch"),
        )
        choice = select_wheel(table, target, package=pkg.dist)
        if choice.chosen is None:
            plan.source = f"wheel table ({pkg.dist})"
            plan.skipped = choice.explain()
        else:
            row = choice.chosen
            plan.source = f"wheel table: {row.requirement} (backend {row.backend}, Triton {row.triton})"
            # FlagTree provides the `triton` module: the upstream triton must not shadow it.
            plan.notes.append("replaces the 'triton' module; the installed triton distribution stays pinned")
            extra = [] if ctx.offline or not table.index else ["--extra-index-url", table.index]
            plan.steps.append(_pip(ctx, pkg.name, [row.requirement], [*index_args, *extra]))
    elif src.kind == "git":
        checkout = vals["src"]
        ref = src.commit or src.ref
        plan.source = f"git {src.url}@{ref}"
        if not src.commit:
            plan.notes.append(
                f"not pinned to a commit (uses '{src.ref}'): pin 'commit:' for a reproducible run"
            )
        if ctx.offline:
            plan.source += f" (offline: installs the prebuilt '{pkg.dist}' wheel from --wheel-dir)"
            plan.steps.append(_pip(ctx, pkg.name, [pkg.dist], index_args))
        else:
            plan.steps.append(
                PlanStep(
                    package=pkg.name,
                    kind="git",
                    timeout_s=600.0,
                    argv=["git", "clone", "--filter=blob:none", str(src.url), checkout],
                )
            )
            plan.steps.append(
                PlanStep(
                    package=pkg.name,
                    kind="git",
                    timeout_s=120.0,
                    argv=["git", "-C", checkout, "checkout", "--detach", ref],
                )
            )
            for step in pkg.build:
                if step.vendors and (ctx.vendor is None or ctx.vendor.key not in step.vendors):
                    continue
                argv = [_fill(a, vals) for a in step.argv]
                if any("{" in a for a in argv):
                    who = f"vendor '{ctx.vendor.key}'" if ctx.vendor else "a host without an accelerator"
                    plan.skipped = f"build step '{' '.join(step.argv)}' needs a registry value {who} lacks"
                plan.steps.append(
                    PlanStep(
                        package=pkg.name,
                        kind="build",
                        argv=argv,
                        cwd=_fill(step.cwd, vals),
                        timeout_s=step.timeout_s,
                        env=plan.env,
                    )
                )
            if src.pip_install:
                step_ = _pip(ctx, pkg.name, ["--no-build-isolation", checkout], index_args)
                plan.steps.append(step_)
    return plan


def _git_hosts(stack: StackInstall) -> list[str]:
    hosts = []
    for p in stack.packages:
        if p.source.kind == "git" and p.source.url:
            parts = urlsplit(p.source.url)
            hosts.append(f"{parts.scheme}://{parts.netloc}/")
    return sorted(set(hosts))


def build_plan(stack: StackInstall, ctx: PlanContext, table: WheelTable) -> InstallPlan:
    """Resolve sources, probe the network (unless offline), and write down every command."""
    notes: list[str] = []
    network: list[UrlProbe] = []
    index_url: str | None = None
    if ctx.offline:
        if ctx.wheel_dir is None or not ctx.wheel_dir.is_dir():
            raise UsageError(
                "offline mode needs a folder of wheels",
                where=f"--wheel-dir {ctx.wheel_dir or ''}".strip(),
                fix="pass --wheel-dir DIR holding the wheels (made with pip download / pip wheel elsewhere)",
            )
        index_args = _local_index(ctx)
        notes.append(
            f"offline: pip uses only the wheels in {ctx.wheel_dir} (--no-index); git sources need wheels"
        )
    else:
        mirrors: list[str] = []
        for p in stack.packages:
            mirrors += [m for m in p.source.indexes if m not in mirrors]
        mirrors = mirrors or list(DEFAULT_PYPI_MIRRORS)
        if ctx.probe_network:
            choice = pick_mirror(mirrors, timeout=ctx.network_timeout)
            network += choice.probes
            index_url = choice.chosen
            for probe in probe_urls(_git_hosts(stack), timeout=ctx.network_timeout):
                network.append(probe)
                if not probe.reachable:
                    notes.append(
                        f"git host {probe.url} unreachable ({probe.error}): its git sources will fail; "
                        "use --offline --wheel-dir DIR with prebuilt wheels"
                    )
            if index_url is None:
                notes.append(
                    "no package index is reachable ("
                    + "; ".join(f"{p.url}: {p.error}" for p in choice.probes)
                    + "): run with --offline --wheel-dir DIR to install from local wheels"
                )
        else:
            index_url = mirrors[0]
        index_args = ["--index-url", index_url or mirrors[0]]
        if ctx.wheel_dir:
            index_args += ["--find-links", str(ctx.wheel_dir)]
    values = {
        "python": ctx.python,
        "flagcx_make_flag": (ctx.vendor.flagcx_make_flag or "") if ctx.vendor else "",
        "flagtree_backend": (ctx.vendor.flagtree_backend or "") if ctx.vendor else "",
    }
    values = {k: v for k, v in values.items() if v}
    packages = [_plan_package(p, ctx, index_args, table, values) for p in stack.packages]
    return InstallPlan(
        stack=stack.name,
        python=ctx.python,
        vendor=ctx.vendor.key if ctx.vendor else None,
        protected=ctx.protected,
        constraints_file=str(ctx.constraints_file),
        offline=ctx.offline,
        wheel_dir=str(ctx.wheel_dir) if ctx.wheel_dir else None,
        index_url=index_url,
        work_dir=str(ctx.work_dir),
        network=network,
        packages=packages,
        notes=notes,
    )
