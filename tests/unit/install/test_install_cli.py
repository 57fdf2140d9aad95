"""`stackcert install`: --plan prints the plan that --apply then executes; bad input exits 2 with one line.

Pass/fail exit codes are checked through typer's CliRunner: `stackcert.cli.app.main` currently drops
the code of `typer.Exit` (it runs the app with standalone_mode=False and ignores the return value);
the bad-input cases go through the real console script, where StackcertError maps to exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from stackcert.cli.app import app

STACKCERT = Path(sys.executable).parent / "stackcert"


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STACKCERT), *args], capture_output=True, text=True, timeout=300, check=False)


def test_plan_then_apply_runs_the_printed_plan(
    plain_venv: Path, wheelhouse: dict[str, Path], tiny_config: Path, tmp_path: Path
) -> None:
    common = [
        "--config",
        str(tiny_config),
        "--python",
        str(plain_venv),
        "--vendor",
        "cpu",
        "--offline",
        "--wheel-dir",
        str(wheelhouse["main"]),
        "--run-dir",
        str(tmp_path / "run"),
        "--json",
    ]
    code, out = _invoke("install", "--plan", *common)
    assert code == 0, out
    plan = json.loads(out)
    assert plan["kind"] == "install-plan" and plan["offline"] is True
    assert [p["name"] for p in plan["packages"]] == ["sc_good", "sc_broken"]
    assert not (tmp_path / "run").exists()  # --plan installs nothing and writes nothing

    code, out = _invoke("install", "--apply", *common)
    assert code == 1, out  # the plugin does not import: the gate fails
    result = json.loads(out)
    strip = {"kind", "started", "finished", "command", "stackcert_version", "schema_version"}
    assert result["plan"] == {k: v for k, v in plan.items() if k not in strip}
    gate = {p["name"]: p for p in result["gate"]["packages"]}
    assert gate["sc_good"]["status"] == "pass"
    assert gate["sc_broken"]["error"] == "ImportError: sc_broken needs libmissing.so.1"
    assert (tmp_path / "run" / "install.json").exists()


def test_gate_only(plain_venv: Path, tiny_config: Path, tmp_path: Path) -> None:
    code, out = _invoke(
        "install",
        "--gate",
        "--config",
        str(tiny_config),
        "--python",
        str(plain_venv),
        "--run-dir",
        str(tmp_path),
        "--json",
        "--timeout",
        "60",
    )
    data = json.loads(out)
    assert data["kind"] == "install-gate"
    assert data["passed"] is False and "sc_broken (plugin) fail" in data["reason"]
    assert code == 1


def test_unknown_vendor_did_you_mean(tmp_path: Path) -> None:
    out = _run("install", "--plan", "--vendor", "nvidai", "--engine-only", "--run-dir", str(tmp_path))
    assert out.returncode == 2
    assert "unknown vendor 'nvidai'" in out.stderr and "did you mean 'nvidia'?" in out.stderr
    assert "Traceback" not in out.stderr


def test_offline_without_wheel_dir(tmp_path: Path) -> None:
    out = _run("install", "--plan", "--offline", "--run-dir", str(tmp_path))
    assert out.returncode == 2 and "--offline needs --wheel-dir DIR" in out.stderr
