"""run_verify over two FAKE servers (protocol level): both stacks always run, diff, FlagRelease export."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer

from stackcert.config import StackSpec
from stackcert.diagnose.diff import Conclusion
from stackcert.diagnose.verify import flagrelease_export, run_verify
from stackcert.engines.base import ModelRef
from stackcert.errors import ExitCode, UsageError
from stackcert.jsonio import read_json
from stackcert.smoke import SmokeOptions
from stackcert.status import Status

OPTS = SmokeOptions(offline=False, request_timeout_s=2.0, concurrency=2)


def _model(tmp_path: Path) -> ModelRef:
    return ModelRef(path=tmp_path, served_name="fake-model", tokenizer=tmp_path)


def test_candidate_error_is_partial_and_exports_flagrelease_schema(tmp_path: Path) -> None:
    with FakeOpenAIServer("good", name="base") as ref, FakeOpenAIServer("degenerate", name="full") as cand:
        cand.stack = StackSpec(
            name="full",
            engine="endpoint",
            url=cand.base_url,
            env={"USE_FLAGGEMS": "1"},
            components=["flag_gems"],
        )
        ref.stack = StackSpec(
            name="base",
            engine="endpoint",
            url=ref.base_url,
            env={"USE_FLAGGEMS": "0"},
            unset_env=["FLAGCX_PATH"],
        )
        result = run_verify(
            ref.stack,
            cand.stack,
            _model(tmp_path),
            run_dir=tmp_path,
            options=OPTS,
            servers={"base": ref, "full": cand},
        )
    assert result.reference.status == Status.PASS and result.candidate.status == Status.FAIL
    assert result.diff.conclusion == Conclusion.CANDIDATE_ERROR
    assert result.diff.recommended_stack.value == "base"
    # The degenerate-output finding has no component of its own: the only added component is named.
    assert result.diff.component == "flag_gems"
    assert result.status == "PARTIAL" and result.exit_code == ExitCode.PARTIAL
    saved = read_json(tmp_path / "verify.json")
    assert saved["kind"] == "verify" and saved["diff"]["conclusion"] == "CANDIDATE_ERROR"
    assert (tmp_path / "stacks" / "base" / "smoke.json").exists()
    assert (tmp_path / "stacks" / "full" / "smoke.json").exists()

    export = flagrelease_export(result)
    assert export["diff_analysis"] == {
        "conclusion": "MULTICHIP_ERROR",
        "detail": result.diff.detail,
        "multichip_component": "FlagGems",
        "recommended_stack": "base",
    }
    assert export["run_a_without_multichip"]["flags"] == {"USE_FLAGGEMS": "0", "FLAGCX_PATH": "unset"}
    assert export["run_a_without_multichip"]["phase_b_serve"] == "PASS"
    assert export["run_b_with_multichip"]["phase_b_serve"] == "FAIL"
    assert export["run_b_with_multichip"]["skipped"] is False
    assert export["run_b_with_multichip"]["errors"] and export["status"] == "PARTIAL"


def test_candidate_runs_even_when_the_reference_fails(tmp_path: Path) -> None:
    with FakeOpenAIServer("degenerate", name="a") as ref, FakeOpenAIServer("good", name="b") as cand:
        result = run_verify(
            ref.stack,
            cand.stack,
            _model(tmp_path),
            run_dir=tmp_path,
            options=OPTS,
            servers={"a": ref, "b": cand},
        )
        assert "completions" in cand.requests
    assert result.diff.conclusion == Conclusion.REFERENCE_ONLY_FAIL
    assert result.diff.recommended_stack.value == "full" and result.status == "FAIL"


def test_same_stack_twice_is_a_usage_error(tmp_path: Path) -> None:
    stack = StackSpec(name="x", engine="endpoint", url="http://127.0.0.1:1")
    with pytest.raises(UsageError):
        run_verify(stack, stack, _model(tmp_path), run_dir=tmp_path)
