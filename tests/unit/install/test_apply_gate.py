"""Real pip into a plain temporary venv from locally built wheels, then the import gate."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stackcert.install.apply import InstallResult, apply_plan
from stackcert.install.gate import run_import_gate
from stackcert.install.plan import build_plan
from stackcert.install.spec import GateRequirement, load_install_config
from stackcert.install.wheels import load_wheel_table
from stackcert.status import Status


@pytest.fixture(scope="module")
def installed(
    plain_venv: Path,
    wheelhouse: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    offline_ctx: Any,
    tiny_config_text: str,
) -> InstallResult:
    run_dir = tmp_path_factory.mktemp("run")
    cfg = run_dir / "tiny.yaml"
    cfg.write_text(tiny_config_text)
    ctx = offline_ctx(plain_venv, run_dir, wheelhouse["main"])
    plan = build_plan(load_install_config(cfg), ctx, load_wheel_table())
    return apply_plan(plan, run_dir=run_dir, gate_timeout=60)


def test_pip_steps_installed_both_wheels(installed: InstallResult) -> None:
    assert [p.status for p in installed.packages] == [Status.PASS, Status.PASS]
    step = installed.packages[0].steps[0]
    assert step.returncode == 0 and step.log and Path(step.log).exists()
    assert "--no-index" in step.argv and "--constraint" in step.argv


def test_gate_reports_the_broken_import_with_its_error(installed: InstallResult) -> None:
    gate = installed.gate
    assert gate is not None
    good, broken = gate.packages
    assert (good.name, good.status, good.version) == ("sc_good", Status.PASS, "1.0")
    assert broken.status == Status.FAIL
    assert broken.error == "ImportError: sc_broken needs libmissing.so.1"
    assert not gate.passed  # the plugin the stack needs is broken
    assert "sc_broken (plugin) fail" in gate.reason


def test_run_dir_holds_plan_logs_and_results(installed: InstallResult) -> None:
    run_dir = Path(installed.plan.work_dir).parent
    saved = json.loads((run_dir / "install.json").read_text())
    assert saved["kind"] == "install" and saved["passed"] is False
    assert json.loads((run_dir / "install" / "plan.json").read_text()) == installed.plan.model_dump(
        mode="json"
    )
    assert saved["gate"]["passed"] is False and saved["gate"]["packages"]  # the gate result, in install.json
    assert (run_dir / "install" / "gate" / "sc_broken-import.log").read_text().count("libmissing") >= 1


def test_gate_passes_when_engine_passes_and_component_fails(
    installed: InstallResult, plain_venv: Path, tmp_path: Path
) -> None:
    reqs = [
        GateRequirement(name="sc_good", role="engine", module="sc_good"),
        GateRequirement(name="sc_broken", role="component", module="sc_broken"),
    ]
    gate = run_import_gate(reqs, python=plain_venv, timeout=60, log_dir=tmp_path)
    assert gate.passed
    assert [p.status for p in gate.packages] == [Status.PASS, Status.FAIL]


def test_missing_entry_point_fails(installed: InstallResult, plain_venv: Path, tmp_path: Path) -> None:
    req = GateRequirement(
        name="sc_good", role="plugin", module="sc_good", entry_points={"vllm.platform_plugins": ["fl"]}
    )
    gate = run_import_gate([req], python=plain_venv, timeout=60, log_dir=tmp_path)
    assert not gate.passed
    assert (
        gate.packages[0].error == "entry point(s) fl missing from group 'vllm.platform_plugins' (found: none)"
    )


def test_hanging_import_times_out(plain_venv: Path, wheelhouse: dict[str, Path], tmp_path: Path) -> None:
    subprocess.run(
        [
            str(plain_venv),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(wheelhouse["main"]),
            "sc_slow",
        ],
        check=True,
        timeout=120,
    )
    req = GateRequirement(name="sc_slow", role="engine", module="sc_slow")
    gate = run_import_gate([req], python=plain_venv, timeout=2, log_dir=tmp_path)
    assert gate.packages[0].status == Status.TIMEOUT
    assert gate.packages[0].duration_s < 20


def test_shared_library_check(plain_venv: Path, tmp_path: Path) -> None:
    reqs = [
        GateRequirement(name="libc", role="engine", library="libc.so.6"),
        GateRequirement(name="flagcx", library="{FLAGCX_PATH}/build/lib/libflagcx.so"),
    ]
    env = {k: v for k, v in os.environ.items() if k != "FLAGCX_PATH"}
    gate = run_import_gate(reqs, python=plain_venv, timeout=30, log_dir=tmp_path, env=env)
    assert gate.packages[0].status == Status.PASS
    assert gate.packages[1].status == Status.FAIL
    assert "unset variable" in (gate.packages[1].error or "")
    missing = run_import_gate(
        reqs[1:], python=plain_venv, timeout=30, log_dir=tmp_path, values={"FLAGCX_PATH": str(tmp_path)}
    )
    assert "cannot open shared object file" in (missing.packages[0].error or "")
