"""Execute an install plan step by step (each with a timeout and a log), then run the import gate."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from stackcert.engines.process import run_command
from stackcert.env.probe import HostInfo
from stackcert.env.vendors import Vendor
from stackcert.errors import UsageError
from stackcert.install.gate import GateResult, run_import_gate
from stackcert.install.plan import InstallPlan, PlanContext, PlanStep, build_plan
from stackcert.install.protect import ProtectionCheck, check_pip_step, target_info, write_constraints
from stackcert.install.spec import StackInstall
from stackcert.install.wheels import WheelTable
from stackcert.jsonio import envelope, write_json_atomic
from stackcert.progress import NullProgress, Progress
from stackcert.status import Status


class StepOutcome(BaseModel):
    argv: list[str]
    status: Status
    returncode: int | None = None
    duration_s: float = 0.0
    log: str | None = None
    protection: ProtectionCheck | None = None
    message: str | None = None


class PackageOutcome(BaseModel):
    name: str
    status: Status
    reason: str | None = None
    steps: list[StepOutcome] = Field(default_factory=list)


class InstallResult(BaseModel):
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
) -> PlanContext:
    """Ask the target interpreter for its Python version and its protected packages' versions."""
    python = Path(os.path.abspath(python))
    if not python.exists():
        raise UsageError(
            f"Python interpreter not found: {python}", where="--python", fix="give an existing python"
        )
    log = probe_log or run_dir / "install" / "target.log"
    version, pins = target_info(python, protect, timeout=60.0, log_path=log)
    host = host.model_copy(update={"python": version})
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
    )


def plan_install(stack: StackInstall, ctx: PlanContext, table: WheelTable) -> InstallPlan:
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
    log_dir = run_dir / "install" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    write_constraints(Path(plan.constraints_file), plan.protected)
    write_json_atomic(run_dir / "install" / "plan.json", plan)
    outcomes: list[PackageOutcome] = []
    index = 0
    prog.on_start("install", total=sum(len(p.steps) for p in plan.packages))
    for pkg in plan.packages:
        out = PackageOutcome(name=pkg.name, status=Status.PASS)
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
        outcomes.append(out)
    values: dict[str, str] = {}
    for pkg in plan.packages:
        values.update(pkg.env)
    gate = run_import_gate(
        [p.gate for p in plan.packages if p.gate],
        python=Path(plan.python),
        timeout=gate_timeout,
        log_dir=run_dir / "install" / "gate",
        env={**os.environ, **values},
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


def default_python() -> Path:
    return Path(sys.executable)
