"""The transformers engine (server + offline) and the endpoint engine, on the real demo model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from stackcert.config import OperatorSelection, StackSpec
from stackcert.engines import EngineStartError, ModelRef, Server, launch_server, run_offline
from stackcert.engines.client import post_json, request_headers

pytestmark = pytest.mark.e2e
PROMPT = "Question: What is 12+7?\nAnswer:"


def complete(server: Server, **body: object) -> dict:
    payload = {"model": server.served_model, "prompt": PROMPT, "temperature": 0, **body}
    data: dict = post_json(server, "/v1/completions", payload, timeout=300)
    return data


def test_hf_server_models_and_greedy_completion(hf_server: Server) -> None:
    r = httpx.get(f"{hf_server.base_url}/v1/models", timeout=30)
    assert [m["id"] for m in r.json()["data"]] == [hf_server.served_model]
    data = complete(hf_server, max_tokens=10, logprobs=2)
    choice = data["choices"][0]
    assert "19" in choice["text"], choice["text"]
    assert data["usage"]["completion_tokens"] == 10 and choice["finish_reason"] == "length"
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == 10 and all(v <= 0 for v in lp["token_logprobs"])
    # greedy: the chosen token is the top-1 alternative
    assert all(
        max(top.values()) == pytest.approx(v)
        for top, v in zip(lp["top_logprobs"], lp["token_logprobs"], strict=True)
    )


def test_hf_server_echo_scores_the_prompt(hf_server: Server) -> None:
    data = complete(hf_server, max_tokens=0, echo=True, logprobs=1, return_tokens_as_token_ids=True)
    lp = data["choices"][0]["logprobs"]
    assert lp["token_logprobs"][0] is None and all(v < 0 for v in lp["token_logprobs"][1:])
    assert all(t.startswith("token_id:") for t in lp["tokens"])
    assert len(lp["tokens"]) == data["usage"]["prompt_tokens"]


def test_hf_server_streams_with_usage(hf_server: Server) -> None:
    body = {
        "model": hf_server.served_model,
        "prompt": PROMPT,
        "max_tokens": 6,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = []
    with httpx.stream("POST", f"{hf_server.base_url}/v1/completions", json=body, timeout=300) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == complete(hf_server, max_tokens=6)["choices"][0]["text"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6


def test_hf_server_chat_without_template_is_a_clear_400(hf_server: Server, demo_model_ref: ModelRef) -> None:
    r = httpx.post(
        f"{hf_server.base_url}/v1/chat/completions",
        timeout=60,
        json={"model": hf_server.served_model, "messages": [{"role": "user", "content": "hi"}]},
    )
    if demo_model_ref.has_chat_template:
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    else:
        assert r.status_code == 400 and "chat template" in r.json()["error"]["message"]


def test_offline_matches_server_and_reports_effective_ops(
    hf_server: Server, demo_model_ref: ModelRef, tmp_path: Path
) -> None:
    stack = StackSpec(
        name="ops",
        engine="transformers",
        engine_args={"dtype": "float32"},
        operators=OperatorSelection(library="fault_ops"),
    )
    result = run_offline(
        stack, demo_model_ref, [PROMPT], max_tokens=8, top_logprobs=3, run_dir=tmp_path, timeout=600
    )
    assert result.ok, [f.located() for f in result.findings]
    served = complete(hf_server, max_tokens=8, return_tokens_as_token_ids=True, logprobs=0)
    served_ids = [int(t.split(":")[1]) for t in served["choices"][0]["logprobs"]["tokens"]]
    assert result.completions[0].token_ids == served_ids
    assert len(result.completions[0].top_logprobs) == 8 and len(result.completions[0].top_logprobs[0]) == 3
    record = json.loads((tmp_path / "effective_ops.json").read_text())
    assert record["library"] == "fault_ops" and record["effective"], record


def test_endpoint_engine_with_key(
    hf_server: Server, demo_model_ref: ModelRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACKCERT_TEST_KEY", "sk-never-written-42")
    stack = StackSpec(
        name="ep", engine="endpoint", url=f"{hf_server.base_url}/v1", api_key_env="STACKCERT_TEST_KEY"
    )
    with launch_server(stack, demo_model_ref, run_dir=tmp_path) as ep:
        assert ep.served_model == hf_server.served_model and ep.alive()
        assert request_headers(ep) == {"Authorization": "Bearer sk-never-written-42"}
        assert "19" in complete(ep, max_tokens=10)["choices"][0]["text"]
    for f in tmp_path.rglob("*"):
        assert "sk-never-written-42" not in f.read_text(), f


def test_endpoint_failures_are_located(
    demo_model_ref: ModelRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    stack = StackSpec(
        name="ep", engine="endpoint", url="http://127.0.0.1:9/v1", api_key_env="NO_SUCH_KEY_VAR"
    )
    with pytest.raises(EngineStartError) as info, launch_server(stack, demo_model_ref, run_dir=tmp_path):
        pass
    assert info.value.findings[0].category == "missing_api_key"
    stack = StackSpec(name="ep", engine="endpoint", url="http://127.0.0.1:9/v1")
    with pytest.raises(EngineStartError) as info, launch_server(stack, demo_model_ref, run_dir=tmp_path):
        pass
    assert info.value.findings[0].category == "unreachable"


def test_hf_server_stop_strings(hf_server: Server) -> None:
    choice = complete(hf_server, max_tokens=16, stop=["\n"])["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "\n" not in choice["text"] and "19" in choice["text"]
