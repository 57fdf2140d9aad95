"""The catalogue of bad input: each is one line on stderr (what, where, how to fix) and exit 2,
before any engine starts; damaged run files are reported, never trusted."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackcert.jsonio import envelope, write_json_atomic
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.runner import PLAN
from stackcert.status import Status

ENDPOINTS = """
model: {source: demo}
stacks:
  a: {name: a, engine: endpoint, url: "http://127.0.0.1:9/v1"}
  b: {name: b, engine: endpoint, url: "http://127.0.0.1:9/v1"}
reference: a
candidate: b
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process; a case that got past its check would run on and hit the timeout."""
    return subprocess.run(
        [sys.executable, "-c", "from stackcert.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        env={**__import__("os").environ, "STACKCERT_UNSET_KEY_FOR_TEST": ""},
    )


def assert_one_line_usage(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, (out.returncode, out.stderr, out.stdout[-500:])
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert len(lines) == 1, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


CONFIG_CASES = {
    "smoke max_tokens -5": (
        "phases: {smoke: {options: {max_tokens: -5}}}",
        "phases.smoke.options.max_tokens",
    ),
    "smoke timeout 0": ("phases: {smoke: {options: {request_timeout_s: 0}}}", "request_timeout_s"),
    "smoke concurrency 0": (
        "phases: {smoke: {options: {concurrency: 0}}}",
        "phases.smoke.options.concurrency",
    ),
    "bench concurrency 0": (
        "phases: {bench: {options: {concurrency: [0]}}}",
        "phases.bench.options.concurrency",
    ),
    "bench concurrency -4": ("phases: {bench: {options: {concurrency: [-4]}}}", "concurrency"),
    "bench num_prompts 0": ("phases: {bench: {options: {num_prompts: 0}}}", "num_prompts"),
    "bench num_prompts -3": ("phases: {bench: {options: {num_prompts: -3}}}", "num_prompts"),
    "bench unknown profile": ("phases: {bench: {profiles: [nosuch]}}", "nosuch"),
    "gate alpha 0.9": ("gates: {consistency: {alpha: 0.9}}", "gates.consistency.alpha"),
    "consistency concurrency 0": ("phases: {consistency: {options: {concurrency: 0}}}", "concurrency"),
    "consistency max_tokens -5": (
        "phases: {consistency: {options: {tokens: {max_tokens: -5}}}}",
        "max_tokens",
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_phase_options_stop_the_run_before_it_starts(tmp_path: Path, case: str) -> None:
    extra, needle = CONFIG_CASES[case]
    (tmp_path / "run.yaml").write_text(ENDPOINTS + extra + "\n")
    out = cli("run", "--config", "run.yaml", cwd=tmp_path)
    assert_one_line_usage(out, needle, "fix:")
    assert not (tmp_path / "runs").exists()  # nothing was started, not even a run folder


def test_missing_model_path_says_so(tmp_path: Path) -> None:
    config = ENDPOINTS.replace("model: {source: demo}", "model: {source: path, path: /no/such/model}")
    (tmp_path / "run.yaml").write_text(config)
    assert_one_line_usage(cli("run", "--config", "run.yaml", cwd=tmp_path), "/no/such/model", "fix:")


def test_unset_key_variable_says_so(tmp_path: Path) -> None:
    config = ENDPOINTS.replace(
        'url: "http://127.0.0.1:9/v1"}',
        'url: "http://127.0.0.1:9/v1", api_key_env: STACKCERT_UNSET_KEY_FOR_TEST}',
        1,
    )
    (tmp_path / "run.yaml").write_text(config)
    assert_one_line_usage(
        cli("run", "--config", "run.yaml", cwd=tmp_path), "STACKCERT_UNSET_KEY_FOR_TEST", "export"
    )


def test_a_taken_port_is_found_before_the_engine_starts(tmp_path: Path, taken_port: int) -> None:
    config = ENDPOINTS.replace(
        'b: {name: b, engine: endpoint, url: "http://127.0.0.1:9/v1"}',
        f"b: {{name: b, engine: vllm, engine_args: {{port: {taken_port}}}}}",
    )
    (tmp_path / "run.yaml").write_text(config)
    assert_one_line_usage(cli("run", "--config", "run.yaml", cwd=tmp_path), f"port {taken_port}", "fix:")


@pytest.mark.parametrize(
    "content",
    ['{"config": {"model": ', '{"config": {"model": 5}}', '{"something": 1}', "[]"],
    ids=["truncated", "wrong_schema", "no_config_key", "not_an_object"],
)
def test_resume_with_a_damaged_config_json(tmp_path: Path, content: str) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(content)
    (run / "state.json").write_text("{}")
    assert_one_line_usage(cli("run", "--resume", str(run), cwd=tmp_path), "config.json", "fix:")


def test_resume_with_a_damaged_state_json(tmp_path: Path) -> None:
    from stackcert.runmodel.config import from_preset

    run = tmp_path / "r"
    run.mkdir()
    write_json_atomic(run / "config.json", {"config": from_preset("demo").model_dump(mode="json")})
    (run / "state.json").write_text('{"steps": {"env": ')
    assert_one_line_usage(cli("run", "--resume", str(run), cwd=tmp_path), "state.json", "fix:")


@pytest.mark.parametrize("damage", ["directory", "truncated", "wrong_schema"])
def test_report_with_a_damaged_report_json(tmp_path: Path, damage: str) -> None:
    run = tmp_path / "r"
    run.mkdir()
    if damage == "directory":
        (run / "report.json").mkdir()
    else:
        (run / "report.json").write_text('{"status": ' if damage == "truncated" else '{"status": 5}')
    assert_one_line_usage(cli("report", str(run), cwd=tmp_path), "report.json", "fix:")


def test_cli_ranges_are_usage_errors(tmp_path: Path) -> None:
    out = cli("consistency", "--concurrency", "0", "--reference-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert_one_line_usage(out, "--concurrency")


def _finished_run(tmp_path: Path) -> list[str]:
    """A run whose every step passed and saved its result the way the runner does."""
    ledger = Ledger.create(tmp_path, PLAN)
    ids = [step_id for step_id, _ in PLAN]
    for step_id in ids:
        ledger.start(step_id)
        write_json_atomic(tmp_path / f"{step_id}.json", envelope(step_id, {"ok": True}))
        ledger.finish(step_id, Status.PASS, result_file=f"{step_id}.json")
    return ids


def test_a_damaged_step_file_is_run_again_with_every_later_step(tmp_path: Path) -> None:
    ids = _finished_run(tmp_path)
    damaged = ids[3]
    (tmp_path / f"{damaged}.json").write_text('{"ok": tr')
    reopened = Ledger.open(tmp_path)
    assert [reopened.status(s) for s in ids[:3]] == [Status.PASS] * 3
    assert all(reopened.status(s) is Status.PENDING for s in ids[3:])
    assert "damaged" in reopened.get(damaged).reason
    assert json.loads((tmp_path / "state.json").read_text())["steps"][ids[-1]]["status"] == "pending"


@pytest.mark.parametrize("shape", ['{"ok": true}', "[1, 2]", '{"schema_version": "0", "kind": "env"}'])
def test_a_step_file_of_another_shape_is_damage_too(tmp_path: Path, shape: str) -> None:
    ids = _finished_run(tmp_path)
    (tmp_path / f"{ids[2]}.json").write_text(shape)  # valid JSON, but not what the runner wrote
    reopened = Ledger.open(tmp_path)
    assert [reopened.status(s) for s in ids[:2]] == [Status.PASS] * 2
    assert all(reopened.status(s) is Status.PENDING for s in ids[2:])
