"""`stackcert features`: the matrix of a running server; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.features.fake_features_server import FakeFeaturesServer

from stackcert.cli.app import main
from stackcert.errors import ExitCode
from stackcert.features import FEATURE_IDS, FeatureOptions


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
    assert [r["feature"] for r in doc["features"]] == list(FEATURE_IDS)
    outcomes = {r["feature"]: (r["outcome"], r["basis"]) for r in doc["features"]}
    assert outcomes["structured_output"] == ("supported", "request")
    assert outcomes["long_context"] == ("supported", "request")
    assert outcomes["expert_parallel"] == ("unsupported", "disabled")  # MoE (--model-path), no EP flag
    assert outcomes["graph_mode"] == ("unsupported", "error")  # an endpoint shows neither argv nor log
    assert outcomes["multimodal"] == ("not-applicable", "config")


def test_people_get_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeFeaturesServer() as fake:
        code = _run(
            ["features", "--url", fake.base_url, "--model", "fake-model", "--feature", "structured_output"]
        )
    assert code == 0
    out = capsys.readouterr()
    assert "supported" in out.out and "Structured output" in out.out
    assert "structured_output: supported" in out.err


def test_an_endpoint_matrix_reads_as_the_deliverables_expect(tmp_path: Path) -> None:
    """features.json as written is what the deliverables' reader accepts (four outcomes, a list)."""
    from stackcert.config import StackSpec
    from stackcert.engines.base import ModelRef
    from stackcert.features import probe_features, write_features
    from stackcert.report.deliverable_data import read_features

    with FakeFeaturesServer() as fake:
        fake.behaviour.hostile = "hang"  # errors too must stay within the four outcomes
        matrix = probe_features(
            fake,
            StackSpec(name="fake", engine="vllm"),
            ModelRef(path=Path(""), served_name="fake-model", tokenizer=Path("")),
            options=FeatureOptions(budget_s=3, request_timeout_s=1, capacity_budget_s=0),
        )
    write_features(tmp_path / "features.json", matrix)
    read = read_features(tmp_path)
    assert read is not None and [f.feature for f in read] == list(FEATURE_IDS)
    assert {f.outcome for f in read} <= {"supported", "unsupported", "not-applicable", "checkpoint-missing"}
    assert [f.outcome for f in read] == [r.outcome for r in matrix.features]
