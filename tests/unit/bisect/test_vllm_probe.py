"""The vLLM bisection's pure parts: judging probe answers, naming the operator from a traceback,
the culprit finding; and the halving bound through the same algorithm."""

from __future__ import annotations

import math
from pathlib import Path

from stackcert.config import OperatorSelection, StackSpec
from stackcert.diagnose import answers
from stackcert.diagnose.bisect import ProbeOutcome, bisect_operators
from stackcert.diagnose.vllm_probe import (
    culprit_finding,
    excluding,
    operator_from_findings,
    operator_in_text,
)
from stackcert.evidence.findings import Component, Finding, Layer, LogExcerpt

REF = [
    answers.Answer(prompt="p", tokens=[1, 2, 3], top=[{1: -0.1, 9: -2.5}, {2: -0.2, 7: -0.3}, {3: -0.1}]),
]

# Shaped like a vLLM EngineCore traceback under CUDA_LAUNCH_BLOCKING=1 with FlagGems' Hopper mul
# (a synthetic fixture written for this test, paths as FlagGems 5.0.2 lays them out).
CLB_LOG = """\
(EngineCore pid=42) ERROR 11-27 12:00:00 [core.py:1] EngineCore failed to start.
(EngineCore pid=42) ERROR Traceback (most recent call last):
(EngineCore pid=42) ERROR   File "/site/vllm/v1/engine/core.py", line 120, in __init__
(EngineCore pid=42) ERROR   File "/site/vllm/model_executor/models/gemma3.py", line 80, in forward
(EngineCore pid=42) ERROR     x = x * torch.rsqrt(variance + self.variance_epsilon)
(EngineCore pid=42) ERROR   File "/site/flag_gems/runtime/backend/_nvidia/hopper/ops/mul.py", line 31, in mul
(EngineCore pid=42) ERROR     return mul_all_real_func(A, B)
(EngineCore pid=42) ERROR   File "/site/flag_gems/utils/pointwise_dynamic.py", line 900, in __call__
(EngineCore pid=42) ERROR   File "/site/triton/backends/nvidia/driver.py", line 700, in __call__
(EngineCore pid=42) ERROR RuntimeError: Triton Error [CUDA]: an illegal memory access was encountered
"""


def test_judge_identical_passes() -> None:
    assert answers.judge(REF, REF, tol=0.5).passed


def test_judge_near_tie_divergence_passes_and_stops() -> None:
    cand = [answers.Answer(prompt="p", tokens=[1, 7, 8], top=[{1: -0.1}, {7: -0.25, 2: -0.25}, {8: -0.1}])]
    out = answers.judge(REF, cand, tol=0.5)
    assert out.passed and out.metrics["near_ties"] == 1


def test_judge_real_divergence_is_mismatch() -> None:
    cand = [answers.Answer(prompt="p", tokens=[9, 2, 3], top=[{9: -0.1, 1: -2.0}, {2: -0.2}, {3: -0.1}])]
    out = answers.judge(REF, cand, tol=0.5)
    assert not out.passed and out.category == "mismatch"


def test_judge_drift_and_nan() -> None:
    drift = [answers.Answer(prompt="p", tokens=[1, 2, 3], top=[{1: -1.0}, {2: -0.2}, {3: -0.1}])]
    assert answers.judge(REF, drift, tol=0.5).category == "drift"
    nan = [answers.Answer(prompt="p", tokens=[1, 2, 3], top=[{1: float("nan")}, {2: -0.2}, {3: -0.1}])]
    assert answers.judge(REF, nan, tol=0.5).category == "nan"
    empty = [answers.Answer(prompt="p")]
    assert answers.judge(REF, empty, tol=0.5).category == "mismatch"


def test_parse_choice_token_ids() -> None:
    choice = {
        "text": " 19",
        "logprobs": {"tokens": ["token_id:5"], "top_logprobs": [{"token_id:5": -0.1, "token_id:6": -3.0}]},
    }
    got = answers.parse_choice("q", choice)
    assert got.tokens == [5] and got.top == [{5: -0.1, 6: -3.0}]


def test_deepest_library_frame_names_the_operator() -> None:
    active = ["add", "mul", "rsqrt", "mm"]
    assert operator_in_text(CLB_LOG.splitlines(), active) == "mul"
    assert operator_in_text(CLB_LOG.splitlines(), ["add"]) is None  # mul is not active: not named


def test_operator_from_findings_fault_ops_message() -> None:
    f = Finding(
        step="launch",
        category="kernel_error",
        message="RuntimeError: fault_ops: planted kernel failure in operator 'mul' (aten::mul.Tensor)",
    )
    assert operator_from_findings([f], ["mm", "mul"]) == "mul"
    g = Finding(step="launch", category="crash", message="x", excerpt=LogExcerpt(lines=CLB_LOG.splitlines()))
    assert operator_from_findings([g], ["mul"]) == "mul"


def test_excluding_keeps_request_and_adds_env() -> None:
    stack = StackSpec(name="c", operators=OperatorSelection(library="flag_gems", exclude=["a"]))
    probe = excluding(stack, ["b", "a"], {"CUDA_LAUNCH_BLOCKING": "1"})
    assert probe.operators is not None and probe.operators.exclude == ["a", "b"]
    assert probe.env["CUDA_LAUNCH_BLOCKING"] == "1" and stack.env == {}


def test_fast_path_bound_and_culprit_finding(tmp_path: Path) -> None:
    """With the traceback's operator right, the vLLM search costs 3 engine starts, within ceil(log2 n)+2."""
    ops = [f"op{i}" for i in range(431)] + ["mul"]

    def probe(excluded: list[str]) -> ProbeOutcome:
        ok = "mul" in excluded
        return ProbeOutcome(
            passed=ok, category="pass" if ok else "crash", reason="" if ok else "illegal access"
        )

    result = bisect_operators(ops, probe, traceback_op="mul")
    assert result.status == "found" and result.culprits == ["mul"] and result.verified
    assert result.probes_used == 3 <= math.ceil(math.log2(len(ops))) + 2
    log = tmp_path / "server.log"
    log.write_text(CLB_LOG)
    finding = culprit_finding(result, "flag_gems", [tmp_path / "missing.log", log])
    assert finding is not None
    assert finding.component is Component.FLAG_GEMS and finding.layer is Layer.L3_KERNELS
    assert finding.operator == "mul"
    assert finding.excerpt is not None and any("hopper/ops/mul.py" in x for x in finding.excerpt.lines)


def test_no_culprit_finding_unless_verified() -> None:
    result = bisect_operators(["a"], lambda e: ProbeOutcome(passed=True), traceback_op=None)
    assert culprit_finding(result, "flag_gems", []) is None
