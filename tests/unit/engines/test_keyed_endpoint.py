"""A keyed endpoint passes smoke, bench and consistency behind a key-checking proxy (FAKE servers
upstream; tests/e2e/test_keyed_endpoint_e2e.py runs the same against real vLLM), and the key is in
no file of the run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes.key_proxy import KEY, VAR, KeyProxy, assert_no_key_and_private, keyed
from tests.fakes.openai_stream import FakeOpenAIServer as StreamFake
from tests.fakes.tokenizer import FakeWordTokenizer
from tests.unit.consistency.cons_fake_server import FakeCompletions, serve
from tests.unit.smoke.fake_openai_server import FakeOpenAIServer as SmokeFake

from stackcert.bench.profiles import Profile
from stackcert.bench.runner import run_bench
from stackcert.config import StackSpec
from stackcert.consistency import ConsistencyOptions, run_consistency
from stackcert.engines.base import ModelRef, ServerTimeouts
from stackcert.engines.endpoint import connect
from stackcert.smoke import SmokeOptions, run_smoke
from stackcert.status import Status


@pytest.fixture(autouse=True)
def key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, KEY)


def _model(served: str) -> ModelRef:
    return ModelRef(path=Path("/nonexistent"), tokenizer=Path("/nonexistent"), served_name=served)


@pytest.mark.parametrize("in_url", [False, True], ids=["api_key_env", "key_in_url"])
def test_smoke_on_a_keyed_endpoint(tmp_path: Path, in_url: bool) -> None:
    with (
        SmokeFake() as fake,
        keyed(fake.base_url, _model(fake.served_model), tmp_path, in_url=in_url) as server,
    ):
        result = run_smoke(
            server.stack,
            _model(fake.served_model),
            folder=tmp_path / "stacks" / server.stack.name,
            server=server,
            options=SmokeOptions(offline=False),
        )
    assert result.status == Status.PASS, result.model_dump_json(indent=1)
    assert_no_key_and_private(tmp_path)


def test_bench_on_a_keyed_endpoint(tmp_path: Path) -> None:
    profile = Profile(name="k", input_len=8, output_len=4, num_prompts=4, concurrency=[2], warmup=1)
    with StreamFake() as fake, keyed(fake.base_url, _model(fake.served_model), tmp_path) as server:
        result = run_bench(server, FakeWordTokenizer(), [profile], out_dir=tmp_path / "bench")
    assert result.status == "pass", result.reason
    assert_no_key_and_private(tmp_path)


def test_consistency_on_keyed_endpoints(tmp_path: Path) -> None:
    prompts = tmp_path / "in" / "p.jsonl"
    prompts.parent.mkdir()
    prompts.write_text('{"prompt": "hello"}\n')
    options = ConsistencyOptions.model_validate(
        {"prompts_file": prompts, "sharegpt_texts": 0, "phases": ["tokens", "logprobs"]}
    )
    run_dir = tmp_path / "run"
    with (
        serve(FakeCompletions()) as a,
        serve(FakeCompletions()) as b,
        keyed(a, _model("fake"), run_dir / "a") as ref,
        keyed(b, _model("fake"), run_dir / "b") as cand,
    ):
        result = run_consistency(ref, cand, _model("fake"), options=options, out_dir=run_dir / "out")
    assert result.status == "pass", result
    assert_no_key_and_private(run_dir)


def test_without_the_key_the_proxy_refuses_and_connect_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stackcert.engines.base import EngineStartError

    with SmokeFake() as fake, KeyProxy(fake.base_url, KEY) as proxy:
        monkeypatch.setenv(VAR, "wrong-key")
        stack = StackSpec(name="keyed", engine="endpoint", url=proxy.base_url, api_key_env=VAR)
        with (
            pytest.raises(EngineStartError) as err,
            connect(stack, _model("fake-model"), run_dir=tmp_path, timeouts=ServerTimeouts(request=10)),
        ):
            pass
    assert err.value.findings[0].category == "auth_error" and proxy.rejected
