"""Deliverables from a report (no engine): vllm-ascend test config, tutorial, runbook, model card.
The tutorial's curl command is executed with the real curl against a fake OpenAI server."""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from ascend_schema import UPSTREAM_QWEN3_8B, AscendAccuracyConfig
from pydantic import ValidationError
from report_sample import INJECT, sample_report
from tests.unit.smoke.fake_openai_server import FakeOpenAIServer

from stackcert.cli.app import main
from stackcert.errors import UsageError
from stackcert.report.deliverables import write_deliverables
from stackcert.report.schema import Report

# A served name that breaks naive quoting in shell, JSON, Markdown and Python alike.
NASTY = 'o\'brien "model" $(touch pwned) `id` | <b>'
TUTORIAL_SECTIONS = (
    "Introduction",
    "Supported Features",
    "Environment Preparation",
    "Deployment",
    "Functional Verification",
    "Accuracy Evaluation",
    "Performance",
)
CARD_SECTIONS = (
    "Introduction",
    "Technical Overview",
    "Evaluation Results",
    "User Guide",
    "Environment Setup",
    "Operation Steps",
    "Service Invocation",
    "FAQ",
    "License",
)


_STATS = ("itl_ms", "itl_per_token_ms", "e2el_ms", "ttft_intended_ms", "e2el_intended_ms", "send_delay_ms")


def _metrics(tps: float) -> dict[str, Any]:
    return {
        "duration_s": 1.0,
        "completed": 12,
        "failed": 0,
        "total_input": 768,
        "total_output": 384,
        "output_throughput": tps,
        "request_throughput": tps / 32,
        "total_token_throughput": tps * 3,
        "ttft_ms": {"median": 20.0, "mean": 21.0},
        "tpot_ms": {"median": 5.0},
        **{k: {"median": 1.0} for k in _STATS},
    }


def _task(task: str, items: int, ref: float, cand: float) -> dict[str, Any]:
    """One task comparison as the consistency phase records it (only the fields the documents read vary)."""
    return {
        "task": task,
        "source": "built-in",
        "items": items,
        "reference_accuracy": ref,
        "candidate_accuracy": cand,
        "delta": cand - ref,
        "ci95_newcombe": [-0.1, 0.1],
        "ci95_wald": [-0.1, 0.1],
        "counts": {"both_right": 30, "ref_only": 2, "cand_only": 1, "both_wrong": 7},
        "mcnemar": {"method": "exact", "statistic": 1.0, "p_value": 1.0},
        "rules": {
            "verdict": "pass",
            "abs_drop": 0.0,
            "rel_drop": 0.0,
            "item_diff": 1,
            "reason": "within margin",
        },
        "status": "pass",
    }


def _bench(tps: float) -> dict[str, Any]:
    runs = [
        {"repeat": 0, "discarded": True, "metrics": _metrics(1.0)},  # warm-up: must not count
        {"repeat": 1, "metrics": _metrics(tps)},
        {"repeat": 2, "metrics": _metrics(tps + 10)},
    ]
    return {
        "status": "pass",
        "base_url": "http://127.0.0.1:1",
        "model": "m",
        "profiles": [{"name": "demo", "input_len": 64, "output_len": 32}],
        "points": [{"profile": "demo", "point": "c=4", "concurrency": 4, "num_prompts": 12, "runs": runs}],
    }


def rich_report(
    status: str = "PASS", *, port: int = 8000, name: str = NASTY, chat: bool = False
) -> dict[str, Any]:
    data = sample_report(status)
    data["model"]["source"] = "hub"
    data["config"] = {
        "model": {"source": "hub", "id": "Qwen/Qwen3-0.6B", "dtype": "bfloat16", "max_model_len": 4096},
        "stacks": {
            "eager": {"name": "eager", "engine": "vllm"},
            "compiled": {"name": "compiled", "engine": "vllm"},
        },
        "reference": "eager",
        "candidate": "compiled",
        "phases": {"consistency": {"options": {"task_limit": 40}}},
    }
    data["model_ref"] = {
        "path": "/models/qwen",
        "served_name": name,
        "tokenizer": "/models/qwen",
        "has_chat_template": chat,
    }
    pkg = {
        "torch": {"module": "torch", "version": "2.6.0", "distribution": "torch"},
        "vllm": {"module": "vllm", "version": "0.13.0", "distribution": "vllm"},
        "flag_gems": {"module": "flag_gems", "version": "4.2.0", "distribution": "flag_gems"},
        "flagtree": {"module": "flagtree", "version": "0.3.0", "distribution": "flagtree"},
        "flagcx": {"module": "flagcx", "version": None},
        "vllm_fl": {"module": "vllm_fl", "version": "0.1.0", "distribution": "vllm-plugin-fl"},
    }
    gpu = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559}
    acc = {
        "vendor": "nvidia",
        "display": "NVIDIA",
        "tool": "nvidia-smi",
        "count": 8,
        "devices": [gpu],
        "driver_version": "550.54.15",
        "visible_devices_env": "CUDA_VISIBLE_DEVICES",
        "flagcx_adaptor": None,
        "flagtree_backend": None,
    }
    data["env"] = {
        "python": "3.11.7",
        "python_executable": "/usr/bin/python3",
        "os": "Linux",
        "os_release": "Ubuntu 22.04",
        "arch": "x86_64",
        "glibc": "2.35",
        "disk_path": "/",
        "accelerators": [acc],
        "packages": pkg,
    }
    data["consistency"] = {
        "status": "pass",
        "reference": "eager",
        "candidate": "compiled",
        "tasks": {
            "status": "pass",
            "tasks": [_task("arithmetic_mul", 40, 0.85, 0.825), _task("lm-eval:gsm8k", 38, 0.7, 0.725)],
        },
    }
    args = {"gpu_memory_utilization": 0.8, "tensor_parallel_size": 1, "enforce_eager": False}
    data["stacks"] = {
        "eager": {
            "name": "eager",
            "role": "reference",
            "spec": {"name": "eager", "engine": "vllm", "engine_args": args},
            "bench": _bench(100.0),
        },
        "compiled": {
            "name": "compiled",
            "role": "candidate",
            "spec": {"name": "compiled", "engine": "vllm", "engine_args": {**args, "enforce_eager": True}},
            "bench": _bench(200.0),
        },
    }
    data["compare"] = {"perf_ratio": 0.95}
    stack = {"PASS": "compiled", "PARTIAL": "eager"}.get(status)
    argv = [
        "python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/models/qwen",
        "--served-model-name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    data["serve"] = {
        "stack": stack,
        "command": argv if stack else [],
        "env": {"USE_FLAGGEMS": "1"},
        "unset_env": [],
        "served_name": name,
        "port": port,
    }
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> dict[str, str]:
    written = write_deliverables(Report.model_validate(data), tmp_path)
    assert all(p.parent == tmp_path / "deliverables" for p in written)
    return {p.name: p.read_text(encoding="utf-8") for p in written}


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_deliverable_is_written_with_every_section(tmp_path: Path) -> None:
    docs = _write(tmp_path, rich_report())
    assert set(docs) == {"Qwen3-0.6B.yaml", "Qwen3-0.6B.md", "runbook.md", "model_card.md"}
    tutorial, card, runbook = docs["Qwen3-0.6B.md"], docs["model_card.md"], docs["runbook.md"]
    assert re.findall(r"^## (.+)$", tutorial, flags=re.M) == list(TUTORIAL_SECTIONS)
    assert [h for h in re.findall(r"^##+ (.+)$", card, flags=re.M)] == list(CARD_SECTIONS)
    assert re.findall(r"^## (.+)$", runbook, flags=re.M) == ["Start", "Check", "Stop"]


def test_test_config_matches_vllm_ascend_schema_and_the_measured_values(tmp_path: Path) -> None:
    text = _write(tmp_path, rich_report("PASS"))["Qwen3-0.6B.yaml"]
    config = AscendAccuracyConfig.model_validate(yaml.safe_load(text))
    assert config.model_name == "Qwen/Qwen3-0.6B"
    assert config.hardware == "8 × NVIDIA H100 80GB HBM3"
    # PASS recommends the candidate: its measured accuracy, lm-eval's task name without the bridge prefix.
    assert [(t.name, t.metrics[0].value) for t in config.tasks] == [
        ("arithmetic_mul", 0.825),
        ("gsm8k", 0.725),
    ]
    assert config.limit == 40  # a task limit was set: the items actually scored
    assert config.num_fewshot is None  # not recorded by the run, so not written
    assert config.serve == {
        "dtype": "bfloat16",
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.8,
        "tensor_parallel_size": 1,
        "enforce_eager": True,
    }
    assert text.startswith("# Accuracy test config for Qwen/Qwen3-0.6B in vllm-ascend's e2e schema")


def test_partial_run_writes_the_reference_values(tmp_path: Path) -> None:
    config = yaml.safe_load(_write(tmp_path, rich_report("PARTIAL"))["Qwen3-0.6B.yaml"])
    assert [m["value"] for t in config["tasks"] for m in t["metrics"]] == [0.85, 0.7]
    assert config["serve"]["enforce_eager"] is False


def test_schema_accepts_upstream_and_refuses_drift() -> None:
    AscendAccuracyConfig.model_validate(yaml.safe_load(UPSTREAM_QWEN3_8B))
    broken = yaml.safe_load(UPSTREAM_QWEN3_8B)
    del broken["tasks"][0]["metrics"][0]["value"]
    with pytest.raises(ValidationError):
        AscendAccuracyConfig.model_validate(broken)
    with pytest.raises(ValidationError):
        AscendAccuracyConfig.model_validate({**yaml.safe_load(UPSTREAM_QWEN3_8B), "accuracy": 0.8})


def test_unmeasured_values_say_not_measured(tmp_path: Path) -> None:
    bare = sample_report("PARTIAL")
    bare.pop("env")
    docs = _write(tmp_path, bare)  # no env, no tasks, no bench, no features
    tutorial, card = docs["gemma-3-270m.md"], docs["model_card.md"]
    assert "Not measured: this run has no `features.json`" in _section(tutorial, "Supported Features")
    assert "Not measured: this run scored no accuracy task." in _section(tutorial, "Accuracy Evaluation")
    assert "Not measured: this run has no benchmark" in _section(tutorial, "Performance")
    assert "| vLLM | not measured |" in tutorial and "| FlagCX | not measured |" in card
    config = yaml.safe_load(docs["gemma-3-270m.yaml"])
    assert config["hardware"] == "not measured" and config["tasks"] == []
    assert "No accuracy task was measured" in docs["gemma-3-270m.yaml"]


def test_measured_environment_and_performance(tmp_path: Path) -> None:
    docs = _write(tmp_path, rich_report())
    tutorial = docs["Qwen3-0.6B.md"]
    env = _section(docs["model_card.md"], "User Guide")
    for row in (
        "| Driver | NVIDIA 550.54.15 |",
        "| OS | Ubuntu 22.04 |",
        "| Python | 3.11.7 |",
        "| PyTorch | 2.6.0 |",
        "| vLLM | 0.13.0 |",
        "| FlagGems | 4.2.0 |",
        "| FlagTree | 0.3.0 |",
        "| FlagCX | not installed |",
        "| vllm-plugin-FL | 0.1.0 |",
        "| transformers | not measured |",
    ):
        assert row in env
    assert "pip install vllm==0.13.0 flag_gems==4.2.0 flagtree==0.3.0 vllm-plugin-fl==0.1.0" in tutorial
    # Candidate stack, the discarded warm-up left out: mean of 200 and 210.
    assert "| demo | c=4 | 64 | 32 | 2 | 205.00 | 6.41 | 20.00 | 5.00 |" in _section(tutorial, "Performance")
    assert "| arithmetic_mul | 40 | 0.850 | 0.825 | pass |" in tutorial


@pytest.mark.parametrize(
    ("model", "command"),
    [
        ({"source": "hub", "id": "Qwen/Qwen3-0.6B", "hub": "huggingface"}, "hf download Qwen/Qwen3-0.6B"),
        (
            {"source": "hub", "id": "Qwen/Qwen3-0.6B", "hub": "modelscope", "revision": "v1.0"},
            "modelscope download --model Qwen/Qwen3-0.6B --revision v1.0",
        ),
        ({"source": "demo"}, "stackcert model prepare demo"),
    ],
)
def test_card_says_how_to_get_the_weights(tmp_path: Path, model: dict[str, str], command: str) -> None:
    data = rich_report()
    data["model"]["source"] = model["source"]
    data["config"]["model"] = model
    steps = _section(_write(tmp_path, data)["model_card.md"], "User Guide").split("### Operation Steps")[1]
    assert f"```bash\n{command}\n```" in steps


def test_features_json_fills_the_feature_table(tmp_path: Path) -> None:
    features = [
        {"feature": "prefix caching", "outcome": "supported", "evidence": "smoke passed with it on"},
        {"feature": "LoRA", "outcome": "checkpoint-missing", "evidence": ""},
    ]
    (tmp_path / "features.json").write_text(json.dumps({"features": features}))
    section = _section(_write(tmp_path, rich_report())["Qwen3-0.6B.md"], "Supported Features")
    assert "| prefix caching | supported | smoke passed with it on |" in section
    assert "| LoRA | checkpoint-missing | not measured |" in section
    (tmp_path / "features.json").write_text(json.dumps([{"feature": "x", "outcome": "maybe"}]))
    with pytest.raises(UsageError, match=r"features\.json does not validate"):
        _write(tmp_path, rich_report())


class RecordingServer(FakeOpenAIServer):
    """The fake server, also keeping every request body it received."""

    bodies: list[dict[str, Any]]

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        return await super()._completions(request)

    async def _chat(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return await super()._chat(request)


def _curl_of(section: str) -> str:
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return block.replace("\\\n", " ").strip()  # the shell's line continuation


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("chat", [False, True])
def test_tutorial_curl_command_works_against_a_server(tmp_path: Path, chat: bool) -> None:
    server = RecordingServer(chat=chat)
    server.bodies = []
    with server:
        docs = _write(tmp_path, rich_report(port=server.port, chat=chat))
        command = _curl_of(_section(docs["Qwen3-0.6B.md"], "Functional Verification"))
        argv = shlex.split(command)  # how a POSIX shell splits it
        assert argv[0] == "curl"
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["choices"][0]["message" if chat else "text"]
        # A real shell too, in a scratch folder: the $(...) in the name must stay text.
        shell = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert shell.returncode == 0 and json.loads(shell.stdout)["choices"]
        assert not (tmp_path / "pwned").exists()
    assert [b["model"] for b in server.bodies] == [NASTY, NASTY]  # the exact served name, twice
    assert server.requests == ["chat", "chat"] if chat else ["completions", "completions"]


def test_runbook_and_card_quote_every_name(tmp_path: Path) -> None:
    docs = _write(tmp_path, rich_report())
    runbook, card = docs["runbook.md"], docs["model_card.md"]
    start = _section(runbook, "Start").split("```bash\n", 1)[1].split("```", 1)[0]
    serve_line = next(line for line in start.splitlines() if line.startswith("nohup "))
    argv = shlex.split(serve_line.removeprefix("nohup ").split(" > serve.log")[0])
    assert argv[argv.index("--served-model-name") + 1] == NASTY
    assert "export USE_FLAGGEMS=1" in start
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    calls = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)]
    call = next(c for c in calls if any(k.arg == "model" for k in c.keywords))
    assert {k.arg: ast.literal_eval(k.value) for k in call.keywords}["model"] == NASTY
    assert "<b>" not in card.replace("```python", "").split("```")[0]  # Markdown prose escapes HTML
    assert INJECT not in docs["Qwen3-0.6B.md"]


def test_not_certified_run_says_so_and_serves_nothing(tmp_path: Path) -> None:
    docs = _write(tmp_path, rich_report("FAIL"))
    assert "> **Not certified.**" in docs["Qwen3-0.6B.md"]
    assert "No serve command" in _section(docs["Qwen3-0.6B.md"], "Deployment")
    assert "NOT CERTIFIED" in docs["Qwen3-0.6B.yaml"]
    assert "nothing to start" in docs["runbook.md"]


def test_cli_rereads_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "report.json").write_text(json.dumps(rich_report()))
    main(["deliverables", str(tmp_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert sorted(Path(p).name for p in data["written"]) == [
        "Qwen3-0.6B.md",
        "Qwen3-0.6B.yaml",
        "model_card.md",
        "runbook.md",
    ]
    assert data["features"] is None and (tmp_path / "deliverables" / "runbook.md").is_file()
    with pytest.raises(SystemExit) as exc:
        main(["deliverables", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error: report.json does not exist")
