from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_checkpoint import make_checkpoint

from stackcert.config import ModelSpec
from stackcert.errors import ModelError
from stackcert.models import check_checkpoint, describe_path, resolve_model


def _spec(path: Path, **kw: object) -> ModelSpec:
    return ModelSpec(source="path", path=str(path), **kw)  # type: ignore[arg-type]


def test_path_model_resolves_with_folder_name_as_served_name(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    make_checkpoint(folder, manifest=False)
    ref = resolve_model(_spec(folder, max_model_len=512))
    assert ref.path == folder.resolve()
    assert ref.tokenizer == folder.resolve()
    assert ref.served_name == "my-model"
    assert ref.max_model_len == 512
    assert ref.has_chat_template is False and ref.chat_template is None


def test_served_name_from_spec_wins(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "m", manifest=False)
    assert resolve_model(_spec(tmp_path / "m", served_name="shop")).served_name == "shop"


def test_chat_template_detected_in_tokenizer_config(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    make_checkpoint(folder, manifest=False)
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    assert resolve_model(_spec(folder)).has_chat_template is True


def test_chat_template_detected_as_jinja_file(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    make_checkpoint(folder, manifest=False)
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    assert resolve_model(_spec(folder)).has_chat_template is True


def test_chat_template_file_from_spec_must_exist(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    make_checkpoint(folder, manifest=False)
    with pytest.raises(ModelError, match="chat template file not found") as err:
        resolve_model(_spec(folder, chat_template=str(tmp_path / "nope.jinja")))
    assert err.value.where == "model.chat_template"
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    ref = resolve_model(_spec(folder, chat_template=str(template)))
    assert ref.chat_template == template.resolve() and ref.has_chat_template is True


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no-folder", "model folder not found"),
        ("file", "not a folder"),
        ("no-config", "no config.json"),
        ("bad-config", "config.json is not valid JSON"),
        ("no-weights", "no weights"),
        ("no-tokenizer", "no tokenizer"),
        ("missing-shard", "weight shard missing: model-00002-of-00002.safetensors"),
    ],
)
def test_broken_path_models_give_one_line_errors(tmp_path: Path, breakage: str, message: str) -> None:
    folder = tmp_path / "m"
    if breakage == "file":
        folder.write_text("x")
    elif breakage != "no-folder":
        make_checkpoint(folder, manifest=False)
    if breakage == "no-config":
        (folder / "config.json").unlink()
    elif breakage == "bad-config":
        (folder / "config.json").write_text("{")
    elif breakage == "no-weights":
        (folder / "model.safetensors").unlink()
    elif breakage == "no-tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).unlink()
    elif breakage == "missing-shard":
        index = {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match=message) as err:
        resolve_model(_spec(folder))
    assert err.value.fix and err.value.where
    assert "\n" not in err.value.one_line()


def test_demo_source_resolves_to_the_prepared_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path))
    make_checkpoint(tmp_path / "models" / "gemma-3-270m")  # fake, already "prepared"
    ref = resolve_model(ModelSpec())
    assert ref.path == tmp_path / "models" / "gemma-3-270m"
    assert ref.served_name == "gemma-3-270m"
    assert ref.has_chat_template is False
    assert ref.dtype == "bfloat16"


def test_check_checkpoint_names_the_caller_location(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        check_checkpoint(tmp_path / "none", where="stackcert model info PATH")
    assert err.value.where == "stackcert model info PATH"


def test_describe_path_summarises_config_and_checks_a_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    make_checkpoint(folder)
    info = describe_path(folder, verify=True)
    assert info["architectures"] == ["Gemma3ForCausalLM"]
    assert info["verified"] == "sha256"
    assert {f["path"] for f in info["files"]} >= {"config.json", "model.safetensors", "manifest.json"}
