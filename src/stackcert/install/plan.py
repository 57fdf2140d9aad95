"""The install plan: per package its source, the exact commands, the env it needs, and notes.

`--plan` prints this object; `--apply` executes exactly this object, so what was shown is what runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, Field

from stackcert.env.network import DEFAULT_PYPI_MIRRORS, NetworkConfig, UrlProbe
from stackcert.env.probe import HostInfo
from stackcert.env.vendors import Vendor, VendorRuntime, vendor_runtime
from stackcert.errors import UsageError
from stackcert.install.netplan import NetResolution, git_hosts, resolve_network
from stackcert.install.spec import FLAGCX_HOME, GateRequirement, PackageSpec, StackInstall
from stackcert.install.wheels import Target, WheelTable, select_wheel


class PlanStep(BaseModel):
    """One command of the plan, run with its own timeout and log."""

    package: str
    kind: Literal["pip", "git", "build"]
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = 1800.0
    pip_args: list[str] = Field(default_factory=list, description="pip steps: args checked by the dry run")


class PackagePlan(BaseModel):
    """One package: where it comes from, the commands, its runtime env, and why it may be skipped."""

    name: str
    role: str
    source: str = Field(description="human-readable source: PyPI name+version, wheel, git URL@commit")
    url: str | None = Field(None, description="git: repository URL")
    pinned: str | None = Field(None, description="git: the commit or tag it is pinned to")
    checkout: str | None = Field(None, description="git: the checkout folder")
    steps: list[PlanStep] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    gate: GateRequirement | None = None
    skipped: str | None = Field(None, description="why this package cannot be installed here")
    notes: list[str] = Field(default_factory=list)


class InstallPlan(BaseModel):
    """Everything --apply will do, and the facts it was decided on."""

    stack: str
    python: str
    vendor: str | None
    protected: dict[str, str] = Field(description="installed versions pinned by the constraints file")
    constraints_file: str
    offline: bool
    wheel_dir: str | None = None
    index_url: str | None = None
    github_prefix: str | None = None
    proxy: str | None = None
    work_dir: str
    assumed: dict[str, str] = Field(default_factory=dict, description="target facts given, not probed")
    network: list[UrlProbe] = Field(default_factory=list)
    packages: list[PackagePlan]
    runtime: VendorRuntime = Field(description="the vendor's runtime env and engine arguments")
    notes: list[str] = Field(default_factory=list)


class PlanContext(BaseModel):
    """Everything the planner needs to know about the target; no I/O happens in the planner itself
    except the network probes (skipped when offline or probe_network is False)."""

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
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    flagcx_home: str = FLAGCX_HOME
    assumed: dict[str, str] = Field(default_factory=dict)


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def _pip(
    ctx: PlanContext, name: str, reqs: list[str], index_args: list[str], env: dict[str, str]
) -> PlanStep:
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
    return PlanStep(package=name, kind="pip", argv=argv, timeout_s=ctx.pip_timeout, pip_args=args, env=env)


def _wheel_names(folder: Path | None) -> set[str]:
    if folder is None or not folder.is_dir():
        return set()
    return {str(canonicalize_name(p.name.split("-")[0])) for p in folder.glob("*.whl")}


def _dist_of(requirement: str, fallback: str) -> str:
    try:
        return Requirement(requirement).name
    except InvalidRequirement:
        return fallback


class _Planner:
    """Builds one PackagePlan per spec with the resolved network and the vendor's values."""

    def __init__(
        self, ctx: PlanContext, net: NetResolution, table: WheelTable, values: dict[str, str]
    ) -> None:
        self.ctx, self.net, self.table, self.values = ctx, net, table, values
        self.wheels = _wheel_names(ctx.wheel_dir)
        if ctx.offline:
            self.index_args = ["--no-index", "--find-links", str(ctx.wheel_dir)]
        else:
            index = net.index_url or DEFAULT_PYPI_MIRRORS[0]
            self.index_args = ["--index-url", index, *net.pip_args()]
            if ctx.wheel_dir:
                self.index_args += ["--find-links", str(ctx.wheel_dir)]

    def _offline_missing(self, plan: PackagePlan, dist: str) -> None:
        if self.ctx.offline and str(canonicalize_name(dist)) not in self.wheels:
            plan.skipped = f"offline: no '{dist}' wheel in {self.ctx.wheel_dir}"

    def package(self, pkg: PackageSpec) -> PackagePlan:
        """The plan of one package: its source, every command, env and notes."""
        src = pkg.source
        plan = PackagePlan(name=pkg.name, role=pkg.role, source="", gate=pkg.gate)
        checkout = _fill(src.dest, self.values) if src.dest else str(self.ctx.work_dir / "src" / pkg.name)
        vals = {**self.values, "src": checkout}
        plan.env = {k: _fill(v, vals) for k, v in pkg.env.items()}
        benv = {_fill(k, vals): _fill(v, vals) for k, v in pkg.build_env.items()}
        if any("{" in k or "{" in v for k, v in benv.items()):
            plan.skipped = self._missing_value(f"build env {pkg.build_env}")
        extra = list(src.pip_args)
        if src.kind == "pypi":
            req = src.requirement or pkg.dist
            plan.source = f"PyPI {req}"
            self._offline_missing(plan, _dist_of(req, pkg.dist))
            plan.steps.append(_pip(self.ctx, pkg.name, [*extra, req], self.index_args, benv))
        elif src.kind == "wheel":
            path = Path(_fill(src.path or "", vals)).expanduser()
            plan.source = f"wheel {path}"
            if not path.exists():
                plan.skipped = f"wheel file not found: {path}"
            index = ["--no-index"] if self.ctx.offline else self.index_args
            plan.steps.append(_pip(self.ctx, pkg.name, [*extra, str(path)], index, benv))
        elif src.kind == "wheel_table":
            self._wheel_table(pkg, plan, extra, benv)
        else:
            self._git(pkg, plan, checkout, vals, benv)
        return plan

    def _missing_value(self, what: str) -> str:
        vendor = self.ctx.vendor
        who = f"vendor '{vendor.key}'" if vendor else "a host without an accelerator"
        return f"{what} needs a registry value {who} lacks"

    def _wheel_table(
        self, pkg: PackageSpec, plan: PackagePlan, extra: list[str], benv: dict[str, str]
    ) -> None:
        ctx = self.ctx
        target = Target(
            vendor=ctx.vendor.key if ctx.vendor else None,
            python=ctx.host.python,
            arch=ctx.host.arch,
            glibc=ctx.host.glibc,
            torch=ctx.protected.get("torch"),
            triton=ctx.protected.get("triton"),
        )
        choice = select_wheel(self.table, target, package=pkg.dist)
        plan.notes += choice.notes
        if choice.chosen is None:
            plan.source = f"wheel table ({pkg.dist})"
            plan.skipped = choice.explain()
            return
        row = choice.chosen
        cite = self.table.sources.get(row.source or "", row.source or "")
        plan.source = f"wheel table: {row.requirement} (backend {row.backend}, Triton {row.triton})"
        plan.notes.append(
            "FlagTree provides the 'triton' module; a standalone triton distribution stays installed "
            "(pinned): FlagTree's docs uninstall it first, the import gate reports which one imports"
        )
        if row.note:
            plan.notes.append(row.note)
        if cite:
            plan.notes.append(f"source: {cite}")
        if choice.alternatives:
            plan.notes.append("other builds that fit: " + ", ".join(choice.alternatives))
        self._offline_missing(plan, row.package)
        index = [] if ctx.offline or not self.table.index else ["--extra-index-url", self.table.index]
        plan.steps.append(_pip(ctx, pkg.name, [*extra, row.requirement], [*self.index_args, *index], benv))

    def _git(
        self, pkg: PackageSpec, plan: PackagePlan, checkout: str, vals: dict[str, str], benv: dict[str, str]
    ) -> None:
        ctx, src = self.ctx, pkg.source
        ref = src.pinned or src.ref
        plan.url, plan.pinned, plan.checkout = src.url, src.pinned, checkout
        label = f"{src.commit[:12]} ({src.tag})" if src.commit and src.tag else ref
        plan.source = f"git {src.url}@{label}"
        if not src.pinned:
            plan.notes.append(
                f"not pinned (uses branch '{src.ref}'): pin 'commit:' or 'tag:' for a reproducible run"
            )
        if ctx.offline:
            plan.source += f" (offline: installs the prebuilt '{pkg.dist}' wheel from --wheel-dir)"
            self._offline_missing(plan, pkg.dist)
            plan.steps.append(_pip(ctx, pkg.name, [*src.pip_args, pkg.dist], self.index_args, benv))
            return
        git = ["git", *self.net.git_config()]
        genv = self.net.git_env()
        url = str(src.url)
        if Path(checkout).exists():
            fetch = [*git, "-C", checkout, "fetch", "--tags", url, ref]
            plan.notes.append(f"{checkout} exists: it is fetched and checked out at {ref}, not cloned")
            plan.steps.append(PlanStep(package=pkg.name, kind="git", timeout_s=600.0, argv=fetch, env=genv))
        else:
            parent = Path(checkout).parent
            while not parent.exists() and parent != parent.parent:
                parent = parent.parent
            if src.dest and not os.access(parent, os.W_OK):
                plan.notes.append(f"{parent} is not writable here: run as its owner or choose another folder")
            clone = [*git, "clone", "--filter=blob:none", url, checkout]
            plan.steps.append(PlanStep(package=pkg.name, kind="git", timeout_s=600.0, argv=clone, env=genv))
        plan.steps.append(
            PlanStep(
                package=pkg.name,
                kind="git",
                timeout_s=120.0,
                argv=[*git, "-C", checkout, "checkout", "--detach", ref],
            )
        )
        if src.submodules:
            sub = [*git, "-C", checkout, "submodule", "update", "--init", "--recursive"]
            plan.steps.append(PlanStep(package=pkg.name, kind="git", timeout_s=900.0, argv=sub, env=genv))
        for step in pkg.build:
            if step.vendors and (ctx.vendor is None or ctx.vendor.key not in step.vendors):
                continue
            argv = [_fill(a, vals) for a in step.argv]
            if any("{" in a for a in argv):
                plan.skipped = self._missing_value(f"build step '{' '.join(step.argv)}'")
            plan.steps.append(
                PlanStep(
                    package=pkg.name,
                    kind="build",
                    argv=argv,
                    cwd=_fill(step.cwd, vals),
                    timeout_s=step.timeout_s,
                    env=benv,
                )
            )
        if src.pip_install:
            target = str(Path(checkout) / src.pip_subdir) if src.pip_subdir else checkout
            args = ["--no-build-isolation", *src.pip_args, target]
            plan.steps.append(_pip(ctx, pkg.name, args, self.index_args, benv))


def _order_notes(stack: StackInstall, vendor: Vendor | None, packages: list[PackagePlan]) -> list[str]:
    notes: list[str] = []
    names = [p.name for p in stack.packages]
    by = {p.name: p for p in packages}
    for first, then in vendor.install_before if vendor else ():
        if first in names and then in names and names.index(then) < names.index(first):
            why = f"on {vendor.display if vendor else ''} {first} must be installed before {then}"
            by[then].skipped = by[then].skipped or f"{why}: reorder the config's packages"
            notes.append(why)
    return notes


def build_plan(stack: StackInstall, ctx: PlanContext, table: WheelTable) -> InstallPlan:
    """Resolve sources, probe the network chains (unless offline), and write down every command."""
    notes: list[str] = []
    if ctx.offline and (ctx.wheel_dir is None or not ctx.wheel_dir.is_dir()):
        raise UsageError(
            "offline mode needs a folder of wheels",
            where=f"--wheel-dir {ctx.wheel_dir or ''}".strip(),
            fix="pass --wheel-dir DIR holding the wheels (made with pip download / pip wheel elsewhere)",
        )
    if ctx.offline:
        net = NetResolution()
        notes.append(
            f"offline: pip uses only the wheels in {ctx.wheel_dir} (--no-index); git sources need wheels"
        )
    else:
        pypi: list[str] = list(ctx.network.pypi)
        for p in stack.packages:
            pypi += [m for m in p.source.indexes if m not in pypi]
        pypi = pypi or list(DEFAULT_PYPI_MIRRORS)
        github, others = git_hosts([str(p.source.url) for p in stack.packages if p.source.kind == "git"])
        net = resolve_network(
            ctx.network,
            pypi=pypi,
            needs_github=github,
            other_git_hosts=others,
            probe=ctx.probe_network,
            timeout=ctx.network_timeout,
        )
        notes += net.notes
    vendor = ctx.vendor
    values = {
        "python": ctx.python,
        "flagcx_home": ctx.flagcx_home,
        "flagcx_make_flag": (vendor.flagcx_make_flag or "") if vendor else "",
        "flagcx_adaptor": (vendor.flagcx_adaptor or "") if vendor else "",
        "flagtree_backend": (vendor.flagtree_backend or "") if vendor else "",
    }
    planner = _Planner(ctx, net, table, {k: v for k, v in values.items() if v})
    packages = [planner.package(p) for p in stack.packages]
    notes += _order_notes(stack, vendor, packages)
    if vendor:
        notes += list(vendor.install_notes)
    if ctx.assumed:
        notes.append(
            "planned for assumed target facts: " + ", ".join(f"{k}={v}" for k, v in ctx.assumed.items())
        )
    return InstallPlan(
        stack=stack.name,
        python=ctx.python,
        vendor=vendor.key if vendor else None,
        protected=ctx.protected,
        constraints_file=str(ctx.constraints_file),
        offline=ctx.offline,
        wheel_dir=str(ctx.wheel_dir) if ctx.wheel_dir else None,
        index_url=net.index_url,
        github_prefix=net.github_prefix,
        proxy=net.proxy,
        work_dir=str(ctx.work_dir),
        assumed=ctx.assumed,
        network=net.probes,
        packages=packages,
        runtime=vendor_runtime(vendor),
        notes=notes,
    )
