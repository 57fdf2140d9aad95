"""Every stackcert command a report or an error message suggests exists, with the options it names."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from stackcert.report import render

SUGGESTED = sorted(
    {
        m.group(1).strip()
        for text in render._FAQ_FIX.values()
        for m in re.finditer(r"\(stackcert ([^)]*)\)", text)
    }
    | {"run --resume RUN_DIR", "install --gate", "model prepare demo"}
)


@pytest.mark.parametrize("command", SUGGESTED)
def test_suggested_command_exists(command: str) -> None:
    words = command.split()
    path = [w for w in words if re.fullmatch(r"[a-z]+", w) and w not in {"demo"}]
    options = [w for w in words if w.startswith("--")]
    out = subprocess.run(
        [sys.executable, "-c", "from stackcert.cli import main; main()", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for option in options:
        assert option in out.stdout, f"stackcert {' '.join(path)} has no {option}"


def test_the_faq_names_commands() -> None:
    assert {"env", "install --gate", "model info"} <= set(SUGGESTED)
