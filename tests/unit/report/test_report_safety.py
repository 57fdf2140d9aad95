"""What a broken server or a hostile config puts into a report stays inert and bounded."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from report_sample import sample_report

from stackcert.report.render import render_html, render_markdown, write_reports
from stackcert.report.schema import Report

ANSI = "\x1b[31mRED\x1b[0m\x1b]0;title\x07"
IMAGE = "![x](http://evil.example/p.png)"
LINK = "[click](http://evil.example/)"
HUGE = "y" * (1 << 20)


def hostile() -> dict[str, Any]:
    data = sample_report()
    data["conclusion"] = f"PARTIAL {ANSI} {IMAGE} {LINK}"
    data["evaluation"][0]["candidate"] = HUGE
    data["evaluation"][0]["reference"] = f"{IMAGE}\n# heading\n| cell"
    data["timeline"][1]["reason"] = f"HTTP 500: {ANSI}"
    data["reference"] = "ea`ger"
    data["serve"]["served_name"] = "it's-a-model"
    data["serve"]["env"] = {
        "OPENAI_API_KEY": "sk-live-123456",
        "HF_TOKEN": "hf_abcdef",
        "OK": "1",
        "BAD NAME": "x",
    }
    data["serve"]["command"] = ["vllm", "serve", "--api-key", "sk-argv-654321", "--model", "/m"]
    data["serve"]["unset_env"] = ["X; rm -rf /"]
    return data


def test_markdown_is_inert_bounded_and_quoted(tmp_path: Path) -> None:
    written = write_reports(Report.model_validate(hostile()), tmp_path)
    md = written["report.md"].read_text()
    html = written["report.html"].read_text()
    for text in (md, html):
        assert "\x1b" not in text and "\x07" not in text  # no control characters, no ANSI
        for secret in ("sk-live-123456", "hf_abcdef", "sk-argv-654321"):
            assert secret not in text
        assert len(text) < 200_000  # a 1 MiB answer is cut
        assert "truncated: 1048576 characters" in text
    assert not re.search(r"(?<!\\)!\[", md) and not re.search(r"(?<!\\)\[[^\]]*\]\(", md)  # no image, no link
    assert "http://evil" not in md  # no bare autolink either
    assert "\n# heading" not in md
    assert "`ea`ger`" not in md  # a backtick cannot close the code span
    curl = next(line for line in md.splitlines() if line.strip().startswith("-d "))
    body = json.loads(shlex.split(curl.strip())[1])
    assert body["model"] == "it's-a-model"  # the quote is quoted, the example still works
    assert "export OK=1" in md and "BAD NAME" not in md
    assert "unset 'X; rm -rf /'" in md


def test_html_stays_inert() -> None:
    html = render_html(Report.model_validate(hostile()))
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert 'src="http' not in html and 'href="http' not in html


def test_markdown_of_a_plain_report_is_unchanged_in_substance() -> None:
    md = render_markdown(Report.model_validate(sample_report()))
    assert "export VLLM_CPU_KVCACHE_SPACE=2" in md and "bad_output" in md
