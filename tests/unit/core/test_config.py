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


def test_engine_args_an_engine_does_not_support_are_refused_by_name() -> None:
    import pytest
    from pydantic import ValidationError

    from stackcert.config import StackSpec

    ok = StackSpec(name="hf", engine="transformers", engine_args={"attn_implementation": "sdpa"})
    assert ok.engine_args["attn_implementation"] == "sdpa"
    with pytest.raises(ValidationError) as err:
        StackSpec(name="hf", engine="transformers", engine_args={"tensor_parallel_size": 2})
    text = str(err.value)
    assert "tensor_parallel_size" in text and "attn_implementation" in text  # names the key and the choices
    with pytest.raises(ValidationError, match="endpoint engine"):
        StackSpec(name="e", engine="endpoint", url="http://127.0.0.1:1", engine_args={"dtype": "float32"})
    # vLLM's keys pass through to vLLM, whose parser refuses unknown flags itself
    assert StackSpec(name="v", engine="vllm", engine_args={"max_num_seqs": 4}).engine_args


def test_a_refused_engine_arg_in_a_config_file_is_one_line_with_its_place(tmp_path: Path) -> None:
    import pytest

    from stackcert.errors import ConfigError
    from stackcert.runmodel.config import load_run_config

    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "model: {source: demo}\nreference: a\ncandidate: b\nstacks:\n"
        "  a: {name: a, engine: transformers}\n"
        "  b: {name: b, engine: transformers, engine_args: {tensor_parallel_size: 8}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_run_config(cfg)
    line = str(err.value)
    assert "tensor_parallel_size" in line and "\n" not in line.strip()
