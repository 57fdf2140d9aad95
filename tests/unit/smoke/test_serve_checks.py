"""Phase B checks against a FAKE OpenAI server (protocol level); real vLLM is covered in tests/e2e."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer

from stackcert.engines.base import ModelRef
from stackcert.evidence.findings import Layer
from stackcert.smoke import SmokeOptions, run_smoke
from stackcert.smoke.models import SmokeResult
from stackcert.status import Status


def _model(tmp_path: Path, *, chat: bool = False) -> ModelRef:
    return ModelRef(path=tmp_path, served_name="fake-model", tokenizer=tmp_path, has_chat_template=chat)


def _opts(**kw: object) -> SmokeOptions:
    base: dict[str, object] = {"offline": False, "request_timeout_s": 1.5, "concurrency": 3}
    base.update(kw)
    return SmokeOptions.model_validate(base)


def _smoke(tmp_path: Path, server: FakeOpenAIServer, *, chat: bool = False, **kw: object) -> SmokeResult:
    return run_smoke(
        server.stack,
        _model(tmp_path, chat=chat),
        folder=tmp_path / "run" / "stacks" / server.stack.name,
        server=server,
        options=_opts(**kw),
    )


def _status(result: SmokeResult) -> dict[str, Status]:
    return {c.name: c.status for c in result.phase_b_serve.checks}


def test_good_server_passes_and_chat_without_template_is_skipped(tmp_path: Path) -> None:
    with FakeOpenAIServer("good") as server:
        result = _smoke(tmp_path, server)
    checks = _status(result)
    assert result.status == Status.PASS, result.model_dump_json(indent=1)
    assert checks == {
        "models": Status.PASS,
        "completions": Status.PASS,
        "chat": Status.SKIPPED,
        "stream": Status.PASS,
        "concurrency": Status.PASS,
        "metrics": Status.PASS,
    }
    chat = next(c for c in result.phase_b_serve.checks if c.name == "chat")
    assert "no chat template" in chat.detail
    assert "chat" not in server.requests  # skipped means not asked
    assert server.requests.count("completions") >= 3 + 3  # greedy prompts + the burst
    assert result.output_sample == " 12+7 = 19\nQuestion: What"
    assert result.phase_a_offline.status == Status.SKIPPED
    saved = result.model_dump(mode="json")  # what the pipeline and the CLI write as smoke.json
    assert saved["status"] == "pass"
    assert {"phase_a_offline", "phase_b_serve", "output_sample", "timings", "findings"} <= set(saved)


def test_chat_runs_when_the_model_has_a_template(tmp_path: Path) -> None:
    with FakeOpenAIServer("good", chat=True) as server:
        result = _smoke(tmp_path, server, chat=True)
    assert _status(result)["chat"] == Status.PASS
    assert "chat" in server.requests


def test_no_metrics_endpoint_is_skipped_and_bad_metrics_fail(tmp_path: Path) -> None:
    with FakeOpenAIServer("good", metrics=False) as server:
        assert _status(_smoke(tmp_path, server))["metrics"] == Status.SKIPPED
    with FakeOpenAIServer("bad_metrics") as server:
        result = _smoke(tmp_path, server)
    assert _status(result)["metrics"] == Status.FAIL
    assert result.status == Status.FAIL


def test_hanging_request_times_out(tmp_path: Path) -> None:
    with FakeOpenAIServer("hang") as server:
        result = _smoke(tmp_path, server, request_timeout_s=0.5, concurrency=2)
    checks = _status(result)
    assert checks["models"] == Status.PASS
    assert checks["completions"] == Status.TIMEOUT
    assert checks["stream"] == Status.TIMEOUT
    assert result.status == Status.TIMEOUT
    done = next(c for c in result.phase_b_serve.checks if c.name == "completions")
    assert done.duration_s < 5 and done.finding is not None and done.finding.category == "request_timeout"


@pytest.mark.parametrize(("mode", "needle"), [("malformed_sse", "malformed SSE"), ("no_done", "[DONE]")])
def test_broken_sse_stream_fails(tmp_path: Path, mode: str, needle: str) -> None:
    with FakeOpenAIServer(mode) as server:
        result = _smoke(tmp_path, server)
    checks = _status(result)
    assert checks["completions"] == Status.PASS and checks["stream"] == Status.FAIL
    stream = next(c for c in result.phase_b_serve.checks if c.name == "stream")
    assert needle in stream.detail
    assert stream.finding is not None and stream.finding.category == "malformed_sse"
    assert stream.finding.step == "smoke" and stream.finding.phase == "serve"


def test_degenerate_and_wrong_outputs_are_located_numerics_findings(tmp_path: Path) -> None:
    with FakeOpenAIServer("degenerate") as server:
        result = _smoke(tmp_path, server)
    assert result.status == Status.FAIL
    finding = next(c for c in result.phase_b_serve.checks if c.name == "completions").finding
    assert finding is not None and finding.layer == Layer.L6_NUMERICS and "degenerate" in finding.message
    with FakeOpenAIServer("wrong_answer") as server:
        result = _smoke(tmp_path, server)
    finding = next(c for c in result.phase_b_serve.checks if c.name == "completions").finding
    assert finding is not None and finding.category == "wrong_answer" and "'19'" in finding.message
    assert result.findings and result.findings[0] == finding


def test_dead_server_is_a_crash_and_the_rest_is_skipped(tmp_path: Path) -> None:
    with FakeOpenAIServer("good") as server:
        server.dead = True  # answers /v1/models, then resets every completion and reports not alive
        result = _smoke(tmp_path, server)
    checks = _status(result)
    assert checks["models"] == Status.PASS
    assert checks["completions"] == Status.CRASH
    assert all(checks[n] == Status.SKIPPED for n in ("chat", "stream", "concurrency", "metrics"))
    assert result.status == Status.CRASH
