"""No secret reaches a run file: URL passwords, secret env values, registered keys; run dir 0700."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from stackcert.config import StackSpec
from stackcert.errors import UsageError
from stackcert.pipeline.session import new_run, resume_run
from stackcert.runmodel.config import from_preset
from stackcert.secrets import REDACTED, forget_key, redact, redact_url, register_key

SECRET_ENV = "hf_abcdefghijkl"
URL_KEY = "sk-in-the-url-42"


def _config(tmp_path: Path) -> object:
    cfg = from_preset("demo", output_dir=str(tmp_path / "runs"))
    ref = cfg.stacks[cfg.reference]
    cfg.stacks[cfg.reference] = ref.model_copy(update={"env": {**ref.env, "HF_TOKEN": SECRET_ENV}})
    cfg.stacks[cfg.candidate] = StackSpec(
        name=cfg.candidate, engine="endpoint", url=f"http://user:{URL_KEY}@127.0.0.1:9/v1"
    )
    return cfg


def test_config_json_holds_no_secret_and_the_run_folder_is_private(tmp_path: Path) -> None:
    _, ledger = new_run(_config(tmp_path))  # type: ignore[arg-type]
    run_dir = ledger.run_dir
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for path in run_dir.iterdir():
        text = path.read_text()
        assert SECRET_ENV not in text and URL_KEY not in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert REDACTED in (run_dir / "config.json").read_text()


def test_resume_takes_redacted_env_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path)
    cfg.stacks[cfg.candidate] = cfg.stacks[cfg.candidate].model_copy(update={"url": "http://127.0.0.1:9/v1"})  # type: ignore[attr-defined]
    _, ledger = new_run(cfg)  # type: ignore[arg-type]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(UsageError, match="HF_TOKEN"):
        resume_run(ledger.run_dir)
    monkeypatch.setenv("HF_TOKEN", SECRET_ENV)
    resumed, _ = resume_run(ledger.run_dir)
    assert resumed.reference_stack().env["HF_TOKEN"] == SECRET_ENV


def test_redaction_rules() -> None:
    assert (
        redact_url("https://u:p4ss@h:1/v1?api_key=k&x=1")
        == f"https://u:{REDACTED}@h:1/v1?api_key={REDACTED}&x=1"
    )
    assert redact({"env": {"OPENAI_API_KEY": "k", "TOKENIZERS_PARALLELISM": "false"}}) == {
        "env": {"OPENAI_API_KEY": REDACTED, "TOKENIZERS_PARALLELISM": "false"}
    }
    assert redact(["vllm", "--api-key", "k", "--port", "8000"]) == [
        "vllm",
        "--api-key",
        REDACTED,
        "--port",
        "8000",
    ]
    register_key("http://10.0.0.1:8000", "sk-registered-key")
    try:
        assert redact({"m": "got sk-registered-key back"}) == {"m": f"got {REDACTED} back"}
    finally:
        forget_key("http://10.0.0.1:8000")
    assert redact({"output_tokens": 5, "max_tokens": 3}) == {"output_tokens": 5, "max_tokens": 3}


def test_the_user_is_told_what_is_redacted(tmp_path: Path) -> None:
    from stackcert.pipeline.preflight import redaction_note

    note = redaction_note(_config(tmp_path))  # type: ignore[arg-type]
    assert note is not None and "HF_TOKEN" in note and "URL" in note
    assert SECRET_ENV not in note and URL_KEY not in note
