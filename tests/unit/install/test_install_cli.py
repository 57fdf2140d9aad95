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
from typing import Any

import pytest
from typer.testing import CliRunner

from stackcert.cli.app import app
from stackcert.env.vendors import get_vendor, vendor_runtime
from stackcert.install.spec import FLAGCX_HOME

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
    assert json.loads((tmp_path / "install" / "gate" / "gate.json").read_text())["passed"] is False
    assert code == 1


def test_unknown_vendor_did_you_mean(tmp_path: Path) -> None:
    out = _run("install", "--plan", "--vendor", "nvidai", "--engine-only", "--run-dir", str(tmp_path))
    assert out.returncode == 2
    assert "unknown vendor 'nvidai'" in out.stderr and "did you mean 'nvidia'?" in out.stderr
    assert "Traceback" not in out.stderr


def test_offline_without_wheel_dir(tmp_path: Path) -> None:
    out = _run("install", "--plan", "--offline", "--run-dir", str(tmp_path))
    assert out.returncode == 2 and "--offline needs --wheel-dir DIR" in out.stderr


# --- one plan per FlagOS vendor on a current torch (2.10), planned with --assume: no network, no GPU.
# vendor -> (python, glibc, arch, expected FlagTree requirement or None = skipped with the reason)
CURRENT: dict[str, tuple[str, str, str, str | None]] = {
    "nvidia": ("3.12.3", "2.39", "x86_64", "flagtree===0.7.0"),
    "amd": ("3.12.3", "2.39", "x86_64", "flagtree===0.7.0rc1+amd3.6"),
    "ascend": ("3.11.6", "2.35", "aarch64", "flagtree===0.7.0+ascend3.5"),
    "metax": ("3.12.3", "2.39", "x86_64", "flagtree===0.7.0rc3+metax3.6"),
    "iluvatar": ("3.12.3", "2.39", "x86_64", "flagtree===0.7.0+iluvatar3.6"),
    "hygon": ("3.10.12", "2.35", "x86_64", "flagtree===0.7.0+hcu3.6"),
    "mthreads": ("3.10.12", "2.35", "x86_64", "flagtree===0.7.0+mthreads3.6"),
    "kunlunxin": ("3.10.12", "2.35", "x86_64", "flagtree===0.7.0rc3+xpu3.6"),
    "cambricon": ("3.10.12", "2.35", "x86_64", None),
    "enflame": ("3.12.3", "2.39", "x86_64", "flagtree===0.7.0rc2+enflame3.6"),
    "tsingmicro": ("3.10.12", "2.35", "x86_64", "flagtree===0.7.0+tsingmicro3.6"),
    "sunrise": ("3.10.12", "2.39", "x86_64", "flagtree===0.6.0+sunrise3.6"),
    "ppu": ("3.12.3", "2.39", "x86_64", "flagtree===0.7.0+ppu3.6"),
}


def _plan_for(vendor: str, tmp_path: Path, *extra: str) -> dict[str, Any]:
    python, glibc, arch, _ = CURRENT[vendor]
    assume = ["torch=2.10.0", f"python={python}", f"glibc={glibc}", f"arch={arch}"]
    args = ["install", "--plan", "--vendor", vendor, "--no-probe", "--json", "--run-dir", str(tmp_path / "r")]
    for item in assume:
        args += ["--assume", item]
    code, out = _invoke(*args, *extra)
    assert code == 0, out
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.mark.parametrize("vendor", sorted(CURRENT))
def test_plan_per_vendor_on_current_torch(vendor: str, tmp_path: Path) -> None:
    row = get_vendor(vendor)
    plan = _plan_for(vendor, tmp_path)
    by = {p["name"]: p for p in plan["packages"]}
    assert plan["vendor"] == vendor and plan["protected"] == {"torch": "2.10.0"}
    assert list(by) == ["vllm", "flagtree", "flag_gems", "flagcx", "vllm_fl"]
    # vLLM: PyPI on NVIDIA, otherwise the pinned v0.28.0 source with the 'empty' target and no deps.
    vllm = by["vllm"]
    if vendor == "nvidia":
        assert vllm["source"] == "PyPI vllm==0.28.0"
    else:
        assert vllm["pinned"] == "2cf0a6915ce544dc493a0990f2ea38d81601128a"
        pip = vllm["steps"][-1]
        assert pip["env"] == {"VLLM_TARGET_DEVICE": "empty"} and "--no-deps" in pip["argv"]
    # FlagTree: the current build for this vendor, Python and glibc.
    want = CURRENT[vendor][3]
    flagtree = by["flagtree"]
    if want is None:
        assert flagtree["skipped"] and "publishes no wheel for vendor" in flagtree["skipped"]
    else:
        assert flagtree["skipped"] is None and want in flagtree["steps"][0]["argv"]
    # FlagCX: built with the vendor's make flag, torch plugin with its FLAGCX_ADAPTOR, at the preset's path.
    flagcx = by["flagcx"]
    make = next(s for s in flagcx["steps"] if s["kind"] == "build")
    assert make["argv"] == ["make", f"{row.flagcx_make_flag}=1", "-j8"]
    plugin = flagcx["steps"][-1]
    assert plugin["argv"][-1] == f"{FLAGCX_HOME}/plugin/torch"
    assert plugin["env"]["FLAGCX_ADAPTOR"] == row.flagcx_adaptor
    assert flagcx["env"] == {"FLAGCX_PATH": FLAGCX_HOME}
    # Every git source pinned to a commit; nothing relaxes TLS.
    for pkg in by.values():
        if pkg["url"]:
            assert pkg["pinned"] and len(pkg["pinned"]) == 40, pkg["name"]
    assert "--trusted-host" not in json.dumps(plan)
    # The vendor's runtime settings ride along with the plan.
    runtime = vendor_runtime(vendor)
    assert plan["runtime"]["env"] == runtime.env and plan["runtime"]["engine_args"] == runtime.engine_args
    if vendor == "ascend":
        assert plan["runtime"]["env"] == {"TRITON_ALL_BLOCKS_PARALLEL": "1"}
        assert plan["runtime"]["cli_args"] == ["--enforce-eager"]
        assert by["flag_gems"]["pinned"] == "3b406c36212744b98b9720bf6d0a5387c09fe96b"
    if vendor == "mthreads":
        assert plan["runtime"]["env"]["VLLM_MUSA_ENABLE_MOE_TRITON"] == "1"
        assert plan["runtime"]["engine_args"]["block_size"] == 64
    if vendor in ("nvidia", "amd"):
        assert by["vllm_fl"]["steps"][-1]["env"] == {"VLLM_VENDOR": "cuda"}


def test_iluvatar_on_ubuntu_2204_says_no_build_and_nearest(tmp_path: Path) -> None:
    plan = _plan_for("iluvatar", tmp_path, "--assume", "glibc=2.35")
    flagtree = next(p for p in plan["packages"] if p["name"] == "flagtree")
    assert flagtree["skipped"].startswith("no flagtree build for this combination; nearest builds:")
    assert "needs glibc >= 2.38, host has 2.35" in flagtree["skipped"]


def test_mirror_flags_and_flagcx_dir(tmp_path: Path) -> None:
    plan = _plan_for(
        "metax",
        tmp_path,
        "--pypi-mirror",
        "https://mirror.example/simple/",
        "--github-mirror",
        "https://gh.example/github.com/",
        "--flagcx-dir",
        str(tmp_path / "flagcx"),
    )
    assert plan["index_url"] == "https://mirror.example/simple/"
    assert plan["github_prefix"] == "https://gh.example/github.com/"
    flagcx = next(p for p in plan["packages"] if p["name"] == "flagcx")
    assert flagcx["env"] == {"FLAGCX_PATH": str(tmp_path / "flagcx")}
    assert flagcx["steps"][0]["argv"][:3] == [
        "git",
        "-c",
        "url.https://gh.example/github.com/.insteadOf=https://github.com/",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--assume", "cuda=12"], "bad --assume 'cuda=12'"),
        (["--github-mirror", "ftp://mirror.example/"], "bad --github-mirror 'ftp://mirror.example/'"),
        (["--proxy", "proxy.example:3128"], "bad --proxy 'proxy.example:3128'"),
        (["--apply", "--assume", "torch=2.10.0"], "--assume plans for another target"),
    ],
)
def test_bad_network_and_assume_input_is_one_line_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    mode = [] if "--apply" in args else ["--plan"]
    out = _run("install", *mode, "--vendor", "nvidia", "--no-probe", "--run-dir", str(tmp_path), *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
