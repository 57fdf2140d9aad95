"""`stackcert features`: the matrix of a running server; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.features.fake_features_server import FakeFeaturesServer

from stackcert.cli.app import main
from stackcert.errors import ExitCode
from stackcert.features import FEATURE_IDS


def _run(argv: list[str]) -> int:
    """The exit code of `stackcert ARGV` (main returns normally on success)."""
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--url", "localhost:8000", "--model", "m"], "is not an http(s) URL"),
        (["--url", "http://127.0.0.1:99999", "--model", "m"], "bad port"),
        (["--url", "http://127.0.0.1:1", "--model", "m"], "GET http://127.0.0.1:1/v1/models failed"),
        (["--url", "http://127.0.0.1:1", "--model", " "], "--model is empty"),
        (["--url", "http://127.0.0.1:1", "--model", "m", "--feature", "warp_drive"], "unknown feature"),
        (["--url", "http://127.0.0.1:1", "--model", "m", "--budget", "0"], "must be positive"),
        (["--url", "http://127.0.0.1:1", "--model", "m", "--model-path", "/nonexistent"], "no config.json"),
        (["--model", "m"], "Missing option '--url'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert _run(["features", *argv]) == int(ExitCode.USAGE)
    out = capsys.readouterr()
    assert words in out.err
    assert "Traceback" not in out.err + out.out


def test_a_model_the_server_does_not_serve(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeFeaturesServer() as fake:
        assert _run(["features", "--url", fake.base_url, "--model", "other"]) == int(ExitCode.USAGE)
    assert "does not serve 'other' (it serves ['fake-model'])" in capsys.readouterr().err


def test_json_prints_the_matrix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "num_local_experts": 4}))
    with FakeFeaturesServer() as fake:
        code = _run(
            [
                "features",
                "--url",
                fake.base_url + "/",
                "--model",
                "fake-model",
                "--model-path",
                str(tmp_path),
                "--budget",
                "20",
                "--json",
            ]
        )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "features" and doc["served_model"] == "fake-model"
    assert [r["feature"] for r in doc["results"]] == list(FEATURE_IDS)
    outcomes = {r["feature"]: r["outcome"] for r in doc["results"]}
    assert outcomes["structured_output"] == "supported" and outcomes["long_context"] == "supported"
    assert outcomes["expert_parallel"] == "disabled"  # MoE from --model-path, no --enable-expert-parallel
    assert outcomes["graph_mode"] == "error"  # an endpoint shows neither argv nor log


def test_people_get_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeFeaturesServer() as fake:
        code = _run(
            ["features", "--url", fake.base_url, "--model", "fake-model", "--feature", "structured_output"]
        )
    assert code == 0
    out = capsys.readouterr()
    assert "supported" in out.out and "Structured output" in out.out
    assert "structured_output: supported" in out.err
