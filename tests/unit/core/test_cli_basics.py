from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stackcert import __version__


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from stackcert.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_version() -> None:
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"stackcert {__version__}"


def test_unknown_command_is_a_usage_error_without_traceback() -> None:
    out = _cli("no-such-command")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "no-such-command" in out.stderr


def test_exit_codes_of_commands_reach_the_shell() -> None:
    import pytest
    import typer

    from stackcert.cli.app import app, main

    @app.command("exit-three-for-test", hidden=True)
    def _exit_three() -> None:
        raise typer.Exit(3)

    with pytest.raises(SystemExit) as exc:
        main(["exit-three-for-test"])
    assert exc.value.code == 3


def test_an_internal_error_still_gives_json_to_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    from stackcert.cli.app import app, main

    @app.command("crash-for-test", hidden=True)
    def _crash() -> None:
        raise ZeroDivisionError("boom")

    with pytest.raises(SystemExit) as exc:
        main(["--json", "crash-for-test"])
    assert exc.value.code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["error"] == "InternalError" and "boom" in data["what"]
