from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fake_checkpoint import flip_byte, make_checkpoint

from stackcert.demo.manifest import MANIFEST_NAME, read_manifest, sha256_file, verify_folder
from stackcert.errors import ExitCode, ModelError

FIX = "stackcert model prepare demo --force"


def test_manifest_lists_every_file_with_real_sha256_and_size(tmp_path: Path) -> None:
    manifest = make_checkpoint(tmp_path)
    assert manifest is not None
    paths = [f.path for f in manifest.files]
    assert paths == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    for entry in manifest.files:
        raw = (tmp_path / entry.path).read_bytes()
        assert entry.size == len(raw)
        assert entry.sha256 == hashlib.sha256(raw).hexdigest()
    on_disk = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert on_disk["kind"] == "model-manifest"
    assert "schema_version" in on_disk and "stackcert_version" in on_disk
    again = read_manifest(tmp_path, fix=FIX)
    assert again is not None and again.files == manifest.files and again.bos_token_id == 2


def test_sha256_file_matches_hashlib_on_multi_block_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (9 * 1024 * 1024 + 3))
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_intact_folder_verifies(tmp_path: Path) -> None:
    manifest = make_checkpoint(tmp_path)
    assert manifest is not None
    verify_folder(tmp_path, manifest, full=True, fix=FIX)


def test_flipped_byte_is_named_with_the_fix(tmp_path: Path) -> None:
    manifest = make_checkpoint(tmp_path)
    assert manifest is not None
    flip_byte(tmp_path / "model.safetensors")
    # Same size: only the full hash can see it.
    verify_folder(tmp_path, manifest, full=False, fix=FIX)
    with pytest.raises(ModelError) as err:
        verify_folder(tmp_path, manifest, full=True, fix=FIX)
    line = err.value.one_line()
    assert "sha256 mismatch" in line and "model.safetensors" in line and FIX in line
    assert "\n" not in line
    assert err.value.exit_code == ExitCode.USAGE


def test_truncated_file_is_caught_by_the_cheap_size_check(tmp_path: Path) -> None:
    manifest = make_checkpoint(tmp_path)
    assert manifest is not None
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match=r"wrong size .*tokenizer\.json"):
        verify_folder(tmp_path, manifest, full=False, fix=FIX)


def test_missing_file_is_named(tmp_path: Path) -> None:
    manifest = make_checkpoint(tmp_path)
    assert manifest is not None
    (tmp_path / "config.json").unlink()
    with pytest.raises(ModelError, match=r"missing: config\.json"):
        verify_folder(tmp_path, manifest, full=False, fix=FIX)


def test_no_manifest_reads_as_none_and_broken_manifest_is_a_model_error(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, manifest=False)
    assert read_manifest(tmp_path, fix=FIX) is None
    (tmp_path / MANIFEST_NAME).write_text('{"files": [')
    with pytest.raises(ModelError, match="manifest is unreadable") as err:
        read_manifest(tmp_path, fix=FIX)
    assert err.value.where == str(tmp_path / MANIFEST_NAME)
