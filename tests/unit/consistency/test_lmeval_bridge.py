"""The lm-eval bridge: argument construction, the shipped task YAML, reading per-item samples."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from stackcert.consistency.lmeval import lmeval_argv, offline_env, read_samples, shipped_include_path
from stackcert.errors import EngineError


def test_argv_for_local_completions(tmp_path: Path) -> None:
    argv = lmeval_argv(
        completions_url="http://127.0.0.1:8021/v1/completions",
        served_model="gemma-3-270m",
        tokenizer=Path("/models/g"),
        task="stackcert_arith_mc",
        include_path=tmp_path,
        output_path=tmp_path / "out",
        limit=10,
        num_concurrent=4,
    )
    assert argv[:5] == [sys.executable, "-m", "lm_eval", "run", "--model"]
    assert argv[5] == "local-completions"
    margs = dict(kv.split("=", 1) for kv in argv[argv.index("--model_args") + 1].split(","))
    assert margs["base_url"] == "http://127.0.0.1:8021/v1/completions"
    assert margs["tokenizer"] == "/models/g"
    assert margs["tokenizer_backend"] == "huggingface"
    assert margs["add_bos_token"] == "True"
    assert margs["model"] == "gemma-3-270m" and margs["num_concurrent"] == "4"
    assert argv[argv.index("--include_path") + 1] == str(tmp_path)
    assert argv[argv.index("--limit") + 1] == "10" and "--log_samples" in argv


def test_offline_env() -> None:
    env = offline_env()
    assert env["HF_DATASETS_OFFLINE"] == "1" and env["HF_HUB_OFFLINE"] == "1"


def test_shipped_yaml_points_at_local_data(tmp_path: Path) -> None:
    folder = shipped_include_path(tmp_path)
    cfg = yaml.safe_load((folder / "stackcert_arith_mc.yaml").read_text())
    data = Path(cfg["dataset_kwargs"]["data_files"]["test"])
    assert cfg["dataset_path"] == "json" and data.is_absolute() and data.is_file()
    first = json.loads(data.read_text().splitlines()[0])
    assert 0 <= first["label"] < len(first["choices"])


def test_read_samples(tmp_path: Path) -> None:
    sub = tmp_path / "model"
    sub.mkdir()
    rows = [{"doc_id": 0, "acc": 1.0}, {"doc_id": 1, "acc": 0.0}]
    (sub / "samples_t_2026.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert read_samples(tmp_path, "t") == {0: True, 1: False}
    with pytest.raises(EngineError):
        read_samples(tmp_path, "other")
