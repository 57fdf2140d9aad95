"""The smoke and verify commands: bad input is one line and exit code 2, never a traceback."""

from __future__ import annotations

import pytest

from stackcert.cli.app import main
from stackcert.errors import ExitCode


def test_cli_unknown_stack_says_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["smoke", "--stack", "eagre", "--preset", "demo"])
    assert exc.value.code == int(ExitCode.USAGE)
    assert "did you mean 'eager'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--reference", "eager", "--candidate", "compild"])
    assert exc.value.code == int(ExitCode.USAGE)
