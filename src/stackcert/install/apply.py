"""Execute an install plan step by step (each with a timeout and a log), then run the import gate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from stackcert.engines.process import run_command
from stackcert.env.network import GITHUB, NetworkConfig
from stackcert.env.probe import HostInfo
from stackcert.env.vendors import Vendor
from stackcert.errors import UsageError
from stackcert.install.gate import GateResult, run_import_gate
from stackcert.install.plan import InstallPlan, PlanContext, PlanStep, build_plan
from stackcert.install.protect import ProtectionCheck, check_pip_step, target_info, write_constraints
from stackcert.install.spec import FLAGCX_HOME, StackInstall
from stackcert.install.wheels import WheelTable
from stackcert.jsonio import envelope, write_json_atomic
from stackcert.progress import NullProgress, Progress
from stackcert.status import Status


class StepOutcome(BaseModel):
    """One executed step."""

    argv: list[str]
    status: Status
    returncode: int | None = None
    duration_s: float = 0.0
    log: str | None = None
    protection: ProtectionCheck | None = None
    message: str | None = None


class PackageOutcome(BaseModel):
    """What happened to one package; git sources record the commit actually checked out."""

    name: str
    status: Status
    reason: str | None = None
    source: str | None = None
    url: str | None = None
    pinned: str | None = Field(None, description="the commit or tag the plan pinned")
    commit: str | None = Field(None, description="git rev-parse HEAD of the checkout after the install")
    steps: list[StepOutcome] = Field(default_factory=list)


class InstallResult(BaseModel):
    """install.json: the plan, every package's outcome (with pins and commits) and the gate."""

    passed: bool
    plan: InstallPlan
    packages: list[PackageOutcome]
    gate: GateResult | None = None


def make_context(
    *,
    host: HostInfo,
    vendor: Vendor | None,
    python: Path,
    run_dir: Path,
    protect: list[str],
    offline: bool = False,
    wheel_dir: Path | None = None,
    probe_network: bool = True,
    network_timeout: float = 3.0,
    probe_log: Path | None = None,
    network: NetworkConfig | None = None,
    flagcx_home: str = FLAGCX_HOME,
    assume: dict[str, str] | None = None,
) -> PlanContext:
    """Ask the target interpreter for its Python version and its protected packages' versions;
    `assume` (torch, triton, python, glibc, arch) overrides what was found, for planning elsewhere."""
    python = Path(os.path.abspath(python))
    if not python.exists():
        raise UsageError(
            f"Python interpreter not found: {python}", where="--python", fix="give an existing python"
        )
    log = probe_log or run_dir / "install" / "target.log"
    version, pins = target_info(python, protect, timeout=60.0, log_path=log)
    assumed = dict(assume or {})
    facts: dict[str, str] = {k: assumed[k] for k in ("python", "glibc", "arch") if k in assumed}
    host = host.model_copy(update={"python": version, **facts})
    if "torch" in assumed and "triton" not in assumed:
        pins.pop("triton", None)  # this host's triton says nothing about the assumed target's
    pins.update({k: v for k, v in assumed.items() if k in ("torch", "triton")})
    return PlanContext(
        host=host,
        vendor=vendor,
        python=str(python),
        protected=pins,
        constraints_file=run_dir / "install" / "constraints.txt",
        work_dir=run_dir / "install",
        offline=offline,
        wheel_dir=wheel_dir.resolve() if wheel_dir else None,
        probe_network=probe_network and not offline,
        network_timeout=network_timeout,
        network=network or NetworkConfig(),
        flagcx_home=flagcx_home,
        assumed=assumed,
    )


def plan_install(stack: StackInstall, ctx: PlanContext, table: WheelTable) -> InstallPlan:
    """The plan for `stack` on the target described by `ctx`."""
    return build_plan(stack, ctx, table)


def _run_step(
    step: PlanStep, index: int, plan: InstallPlan, log_dir: Path, allow_torch_change: bool
) -> StepOutcome:
    log = log_dir / f"{index:02d}-{step.package}-{step.kind}.log"
    argv = list(step.argv)
    if step.kind == "pip":
        if allow_torch_change:
            i = argv.index("--constraint")
            del argv[i : i + 2]  # the user allowed it: the pins would only make pip fail
        elif plan.protected:
            check = check_pip_step(
                Path(plan.python),
                step.pip_args,
                plan.protected,
                timeout=min(step.timeout_s, 600.0),
                log_dir=log_dir,
                name=f"{index:02d}-{step.package}-dryrun",
                env={**os.environ, **step.env},
            )
            if not check.ok:
                return StepOutcome(
                    argv=argv, status=Status.FAIL, protection=check, message=check.message(), log=check.log
                )
    env = {**os.environ, **step.env}
    cwd = Path(step.cwd) if step.cwd else None
    if cwd is not None and not cwd.is_dir():
        return StepOutcome(argv=argv, status=Status.FAIL, message=f"working folder missing: {cwd}")
    done = run_command(argv, timeout=step.timeout_s, log_path=log, env=env, cwd=cwd)
    status = Status.TIMEOUT if done.timed_out else (Status.PASS if done.returncode == 0 else Status.FAIL)
    msg = (
        None
        if status == Status.PASS
        else f"exit {done.returncode}" + (" (timed out)" if done.timed_out else "")
    )
    return StepOutcome(
        argv=argv,
        status=status,
        returncode=done.returncode,
        duration_s=round(done.duration_s, 2),
        log=str(log),
        message=msg,
    )


def apply_plan(
    plan: InstallPlan,
    *,
    run_dir: Path,
    allow_torch_change: bool = False,
    gate_timeout: float = 180.0,
    progress: Progress | None = None,
) -> InstallResult:
    """Run every step of `plan`; a refused or failed step stops only its own package. Then the gate."""
    prog = progress or NullProgress()
    needs_index = any(
        s.kind == "pip" and "--no-index" not in s.pip_args
        for p in plan.packages
        if not p.skipped
        for s in p.steps
    )
    if not plan.offline and plan.index_url is None and needs_index and plan.network:
        raise UsageError(
            "no package index is reachable, so nothing can be installed from it",
            where=", ".join(p.url for p in plan.network),
            fix="run with --offline --wheel-dir DIR (a folder of wheels made where the network works)",
        )
    needs_github = any(
        s.kind == "git" and (p.url or "").startswith(GITHUB)
        for p in plan.packages
        if not p.skipped
        for s in p.steps
    )
    if not plan.offline and plan.github_prefix is None and needs_github and plan.network:
        raise UsageError(
            "GitHub is not usable directly or through a mirror, so the git sources cannot be fetched",
            where=", ".join(p.url for p in plan.network if p.kind == "github"),
            fix="add --github-mirror PREFIX or --proxy URL, or run with --offline --wheel-dir DIR",
        )
    log_dir = run_dir / "install" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    write_constraints(Path(plan.constraints_file), plan.protected)
    write_json_atomic(run_dir / "install" / "plan.json", plan)
    outcomes: list[PackageOutcome] = []
    index = 0
    prog.on_start("install", total=sum(len(p.steps) for p in plan.packages))
    for pkg in plan.packages:
        out = PackageOutcome(
            name=pkg.name, status=Status.PASS, source=pkg.source, url=pkg.url, pinned=pkg.pinned
        )
        if pkg.skipped:
            out.status, out.reason = Status.SKIPPED, pkg.skipped
            outcomes.append(out)
            continue
        for step in pkg.steps:
            index += 1
            prog.on_message("install", f"{pkg.name}: {step.kind} {' '.join(step.argv[:4])}")
            res = _run_step(step, index, plan, log_dir, allow_torch_change)
            out.steps.append(res)
            prog.on_advance("install")
            if res.status != Status.PASS:
                out.status, out.reason = res.status, res.message
                break
        if pkg.checkout and any(s.kind == "git" for s in pkg.steps):
            out.commit = _head_commit(Path(pkg.checkout))
        outcomes.append(out)
    values: dict[str, str] = {}
    for pkg in plan.packages:
        values.update(pkg.env)
    gate = run_import_gate(
        [p.gate for p in plan.packages if p.gate],
        python=Path(plan.python),
        timeout=gate_timeout,
        log_dir=run_dir / "install" / "gate",
        env={**os.environ, **plan.runtime.env, **values},
        values=values,
        progress=prog,
    )
    # Like the gate: a failed engine or plugin install fails the whole install; components are reported.
    roles = {p.name: p.role for p in plan.packages}
    blocked = [o for o in outcomes if o.status.bad and roles.get(o.name) in ("engine", "plugin")]
    result = InstallResult(passed=gate.passed and not blocked, plan=plan, packages=outcomes, gate=gate)
    prog.on_finish("install", "pass" if result.passed else "fail")
    write_json_atomic(run_dir / "install.json", envelope("install", result.model_dump(mode="json")))
    return result


def _head_commit(checkout: Path) -> str | None:
    """The commit a checkout is at (recorded in install.json), or None when it cannot be read."""
    if not (checkout / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and len(out) == 40 else None


def default_python() -> Path:
    """The interpreter stackcert runs in."""
    return Path(sys.executable)
