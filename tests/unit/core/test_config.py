from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.config import Preset, StackSpec, load_preset, preset_names, resolve_stack
from stackcert.errors import ConfigError, UsageError
from stackcert.yamlio import load_model_file


def test_all_shipped_presets_validate() -> None:
    names = preset_names()
    assert {"demo", "flagos", "gems", "fault"} <= set(names)
    for name in names:
        preset = load_preset(name)
        assert preset.reference in preset.stacks and preset.candidate in preset.stacks


def test_demo_preset_differs_only_in_eager_mode() -> None:
    demo = load_preset("demo")
    ref, cand = demo.stack(demo.reference), demo.stack(demo.candidate)
    assert ref.engine == cand.engine == "vllm"
    assert ref.engine_args["enforce_eager"] is True
    assert cand.engine_args["enforce_eager"] is False


def test_flagos_reference_unsets_replacement_stack() -> None:
    flagos = load_preset("flagos")
    base = flagos.stack("base")
    env = base.child_env({"FLAGCX_PATH": "/x", "VLLM_PLUGINS": "fl", "HOME": "/root"})
    # VLLM_PLUGINS="" loads no plugin (unset would load every installed one, vllm_fl included)
    assert env == {
        "HOME": "/root",
        "VLLM_PLUGINS": "",
        "VLLM_FL_PREFER_ENABLED": "false",
        "VLLM_FL_OOT_ENABLED": "0",
        "USE_FLAGGEMS": "0",
    }
    full = flagos.stack(flagos.candidate)
    assert full.env["USE_FLAGGEMS"] == "1" and full.env["VLLM_PLUGINS"] == "fl"
    assert flagos.levels[0] == flagos.reference and flagos.levels[-1] == flagos.candidate


def test_unknown_preset_and_stack_suggest_the_close_name() -> None:
    with pytest.raises(UsageError) as exc:
        load_preset("dmeo")
    assert exc.value.fix == "did you mean 'demo'?"
    with pytest.raises(UsageError) as exc2:
        load_preset("demo").stack("compild")
    assert "compiled" in (exc2.value.fix or "")


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("name: x\nengine: vllm\nenv:\n  A: '1'\nengin_args: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_model_file(path, StackSpec)
    assert "unknown key 'engin_args'" in exc.value.what
    assert exc.value.where == f"{path}:5"


def test_wrong_type_names_nested_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nreference: a\ncandidate: a\nstacks:\n  a:\n    name: a\n    engine: tensorrt\n")
    with pytest.raises(ConfigError) as exc:
        load_model_file(path, Preset)
    assert "stacks.a.engine" in exc.value.what
    assert exc.value.where == f"{path}:7"


def test_missing_key_and_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nstacks: {}\ncandidate: a\n")
    with pytest.raises(ConfigError) as exc:
        load_model_file(path, Preset)
    assert "missing required key 'reference'" in exc.value.what
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError) as exc2:
        load_model_file(bad, Preset)
    assert exc2.value.what.startswith("invalid YAML")
    assert exc2.value.where is not None and exc2.value.where.startswith(str(bad))


def test_endpoint_stack_needs_url(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: remote\nengine: endpoint\n")
    with pytest.raises(ConfigError, match="url"):
        resolve_stack(str(path))
    path.write_text("name: remote\nengine: endpoint\nurl: http://127.0.0.1:9\napi_key_env: KEY\n")
    assert resolve_stack(str(path)).url == "http://127.0.0.1:9"
