"""The vendor build (torch/triton) is protected: a step that would replace it is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stackcert.install.apply import apply_plan
from stackcert.install.plan import build_plan
from stackcert.install.protect import check_pip_step, target_info
from stackcert.install.spec import PackageSpec, Source, StackInstall
from stackcert.install.wheels import load_wheel_table
from stackcert.status import Status

REAL_PY = Path(sys.executable)  # the project venv: dry runs only, nothing is installed into it
OLD_TORCH = StackInstall(
    name="t",
    packages=[PackageSpec(name="sc_old_torch", source=Source(kind="pypi", requirement="sc_old_torch"))],
)


def test_dry_run_against_the_real_torch_shows_the_replacement(
    wheelhouse: dict[str, Path], tmp_path: Path
) -> None:
    _version, pins = target_info(REAL_PY, ["torch", "triton"], timeout=60, log_path=tmp_path / "t.log")
    assert "torch" in pins
    check = check_pip_step(
        REAL_PY,
        ["--no-index", "--find-links", str(wheelhouse["main"]), "sc_old_torch"],
        pins,
        timeout=120,
        log_dir=tmp_path,
    )
    assert not check.ok
    assert check.would_install.get("torch") == "1.0.0"
    assert [(r.name, r.installed, r.would_install) for r in check.replaced] == [
        ("torch", pins["torch"], "1.0.0")
    ]
    assert "--allow-torch-change" in check.message()


def test_unresolvable_torch_requirement_is_refused(wheelhouse: dict[str, Path], tmp_path: Path) -> None:
    check = check_pip_step(
        REAL_PY,
        ["--no-index", "--find-links", str(wheelhouse["nolinks"]), "sc_old_torch"],
        {"torch": "2.13.0+cpu"},
        timeout=120,
        log_dir=tmp_path,
    )
    assert not check.ok
    assert [r.name for r in check.replaced] == ["torch"]
    assert "torch==1.0.0" in (check.error or "")


def test_harmless_step_passes(wheelhouse: dict[str, Path], tmp_path: Path) -> None:
    check = check_pip_step(
        REAL_PY,
        ["--no-index", "--find-links", str(wheelhouse["main"]), "sc_good"],
        {"torch": "2.13.0+cpu"},
        timeout=120,
        log_dir=tmp_path,
    )
    assert check.ok and check.would_install == {"sc_good": "1.0"}


@pytest.fixture
def vendor_venv(tmp_path: Path, wheelhouse: dict[str, Path]) -> Path:
    """A plain venv holding a FAKE 'vendor' torch 2.0.0."""
    subprocess.run([str(REAL_PY), "-m", "venv", str(tmp_path / "v")], check=True, timeout=300)
    py = tmp_path / "v" / "bin" / "python"
    subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(wheelhouse["vendor"]),
            "torch==2.0.0",
        ],
        check=True,
        timeout=120,
    )
    return py


def test_apply_refuses_then_allows_torch_change(
    vendor_venv: Path, wheelhouse: dict[str, Path], tmp_path: Path, offline_ctx: Any
) -> None:
    ctx = offline_ctx(vendor_venv, tmp_path / "run1", wheelhouse["main"])
    assert ctx.protected == {"torch": "2.0.0"}
    plan = build_plan(OLD_TORCH, ctx, load_wheel_table())
    refused = apply_plan(plan, run_dir=tmp_path / "run1", gate_timeout=30)
    pkg = refused.packages[0]
    assert pkg.status == Status.FAIL
    assert pkg.reason and pkg.reason.startswith(
        "refused: this step would replace the vendor build (torch 2.0.0 -> 1.0.0)"
    )
    assert target_info(vendor_venv, ["torch"], timeout=60, log_path=tmp_path / "a.log")[1] == {
        "torch": "2.0.0"
    }
    assert (tmp_path / "run1" / "install" / "constraints.txt").read_text().splitlines()[-1] == "torch==2.0.0"

    allowed = apply_plan(plan, run_dir=tmp_path / "run2", allow_torch_change=True, gate_timeout=30)
    assert allowed.packages[0].status == Status.PASS
    assert "--constraint" not in allowed.packages[0].steps[0].argv
    assert target_info(vendor_venv, ["torch"], timeout=60, log_path=tmp_path / "b.log")[1] == {
        "torch": "1.0.0"
    }
