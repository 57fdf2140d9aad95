"""Profiles are scaled to this host only for an engine this host runs, and never a user's own file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.fakes.openai_stream import FakeOpenAIServer
from tests.fakes.tokenizer import FakeWordTokenizer

from stackcert.bench import runner
from stackcert.bench.profiles import Profile, resolve_profile
from stackcert.config import load_preset, resolve_stack

BIG = {"input_len": 8, "output_len": 4, "num_prompts": 24, "concurrency": [12], "warmup": 0}


@pytest.fixture(autouse=True)
def cpu_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "machine_is_cpu", lambda: True)


def _run(tmp_path: Path, server: object, profile: Profile) -> dict[str, object]:
    result = runner.run_bench(server, FakeWordTokenizer(), [profile], out_dir=tmp_path)  # type: ignore[arg-type]
    assert result.status == "pass", result.reason
    return result.profiles[0]


def test_a_url_is_never_scaled_by_this_host(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        ran = _run(tmp_path, fake.base_url, Profile(name="big", **BIG))
    assert ran["scaled_from"] is None and ran["concurrency"] == [12] and ran["num_prompts"] == 24


def test_a_local_cpu_engine_scales_builtin_profiles_and_says_so(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        fake.info = SimpleNamespace(launcher="api_server_module")  # type: ignore[attr-defined]
        ran = _run(tmp_path, fake, Profile(name="big", **BIG))
    assert ran["concurrency"] == [8] and ran["scaled_from"] == {"num_prompts": 24, "concurrency": [12]}
    assert "CPU engine" in str(ran["scale_reason"])


def test_a_profile_file_is_not_scaled_even_on_a_local_cpu_engine(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "profiles:\n"
        "  - {name: mine, input_len: 8, output_len: 4, num_prompts: 24, concurrency: [12], warmup: 0}\n"
    )
    [profile] = resolve_profile(str(path))
    assert profile.from_file
    with FakeOpenAIServer() as fake:
        fake.info = SimpleNamespace(launcher="api_server_module")  # type: ignore[attr-defined]
        ran = _run(tmp_path / "out", fake, profile)
    assert ran["scaled_from"] is None and ran["concurrency"] == [12]


def test_preset_roles_resolve_to_the_preset_stacks() -> None:
    demo = load_preset("demo")
    assert resolve_stack("reference", "demo").name == demo.reference
    assert resolve_stack("candidate", "demo").name == demo.candidate
