"""Small versions of the verdict-quality panels (benchmarks/verdict_quality.py), on real engines.

Equivalence: stacks that compute the same model correctly must PASS — a vLLM-CPU server against
itself under concurrent load (not batch-invariant: its last bits move), and the float32 transformers
engine with two attention implementations. Fault: the transformers engine with a planted fault of the
fault_ops TEST FIXTURE library must not PASS, and bisection must name the operator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackcert.config import OperatorSelection, StackSpec, load_preset
from stackcert.consistency import ConsistencyOptions, run_consistency
from stackcert.engines import ModelRef, Server, launch_server

pytestmark = pytest.mark.e2e


def _options(tmp_path: Path, **kw: object) -> ConsistencyOptions:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt": p}) + "\n"
            for p in [
                "The capital of France is",
                "Once upon a time,",
                "The three primary colors are",
                "Here is a recipe for pancakes:",
            ]
        )
    )
    base: dict[str, object] = {
        "prompts_file": prompts,
        "sharegpt_texts": 2,
        "max_sharegpt_texts": 4,
        "token_budget": 64,
        "tasks": ["number_sequence"],
        "task_limit": 100,
        "task_budget": 200,
        "concurrency": 8,
    }
    base.update(kw)
    opts = ConsistencyOptions.model_validate(base)
    opts.tokens.max_tokens = 16
    return opts


@pytest.fixture(scope="module")
def fp32_model(demo_model_ref: ModelRef) -> ModelRef:
    return demo_model_ref.model_copy(update={"dtype": "float32"})


@pytest.fixture(scope="module")
def hf_eager_attention(fp32_model: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    stack = StackSpec(
        name="hf_eager_attn",
        engine="transformers",
        engine_args={"dtype": "float32", "attn_implementation": "eager"},
    )
    run_dir = tmp_path_factory.mktemp("hf-eager-attn")
    with launch_server(stack, fp32_model, run_dir=run_dir) as server:
        yield server


def test_vllm_against_itself_under_load_passes(
    vllm_eager_server: Server, demo_model_ref: ModelRef, tmp_path: Path
) -> None:
    res = run_consistency(
        vllm_eager_server, vllm_eager_server, demo_model_ref, options=_options(tmp_path), out_dir=tmp_path
    )
    assert res.status == "pass", [f.message for f in res.findings]
    assert res.logprobs is not None and res.logprobs.noise_floor is not None  # the noise was measured
    assert res.tasks is not None and res.tasks.tasks[0].items >= 100


def test_transformers_attention_implementations_are_equivalent(
    hf_server: Server, hf_eager_attention: Server, fp32_model: ModelRef, tmp_path: Path
) -> None:
    """Two attention implementations of the same float32 model are judged equivalent (PASS).

    Equivalence of attention kernels is a numeric property, decided by the greedy-token and the
    log-prob phases (KL, top-1 disagreement, |Δ log-prob| against the equivalence envelope); a broken
    attention fails them. The task (accuracy) phase is left out: on the one-request-at-a-time
    transformers server it costs 200+ greedy generations (~2 minutes on 2 cores) and adds nothing
    here, since two engines whose greedy tokens and log-probs agree to ~1e-12 nats cannot differ in
    accuracy. That the task phase passes equivalent stacks on a real engine is asserted by
    test_vllm_against_itself_under_load_passes above (100+ items).
    """
    assert "attention eager" in hf_eager_attention.log_path.read_text()  # the argument was honoured
    opts = _options(tmp_path, concurrency=4, phases=["tokens", "logprobs"])
    res = run_consistency(hf_server, hf_eager_attention, fp32_model, options=opts, out_dir=tmp_path)
    assert res.status == "pass", [f.message for f in res.findings]
    assert res.tokens is not None and res.tokens.status == "pass"  # the greedy tokens agree
    lp = res.logprobs
    assert lp is not None and lp.envelope is not None and lp.comparison is not None
    assert lp.comparison.mean_kl <= lp.checks[0].limit  # a measurable difference, inside the tolerance


def test_planted_drift_does_not_pass_and_bisection_names_it(
    hf_server: Server, fp32_model: ModelRef, tmp_path: Path
) -> None:
    # NaN and crash faults are covered by test_bisect_e2e.py; a drift is the case the tolerance decides.
    op, fault = "mm", "drift:0.1"
    from stackcert.diagnose.probe import run_bisect

    preset = load_preset("fault")
    faulty = preset.stack("faulty").model_copy(
        update={"operators": OperatorSelection(library="fault_ops", faults={op: fault})}
    )
    opts = _options(tmp_path, phases=["tokens", "logprobs"])
    with launch_server(faulty, fp32_model, run_dir=tmp_path / "faulty") as cand:
        res = run_consistency(hf_server, cand, fp32_model, options=opts, out_dir=tmp_path / "c")
    assert res.status == "fail", res.status
    [gate, *_] = [f for f in res.findings if f.layer.value == "L6"]
    assert "limit" in gate.message or "nats" in gate.message  # the numbers behind the decision
    from stackcert.consistency.tolerance import probe_tolerance

    tol = probe_tolerance(fp32_model.dtype)  # the same envelope the gate judged with
    result = run_bisect(
        preset.stack("native"), faulty, fp32_model, run_dir=tmp_path / "b", logprob_tol=tol
    ).result
    assert result.culprits == [op], result.message
