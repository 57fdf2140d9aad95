"""The HTML report in a real headless Chromium: the verdict renders, injected model output stays inert."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "report"))
from report_sample import INJECT, sample_report

from stackcert.report.render import render_html
from stackcert.report.schema import Report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium missing: run scripts/ensure_chromium.sh"),
]


def _dump_dom(path: Path, tmp_path: Path) -> str:
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("status", ["PASS", "PARTIAL", "FAIL"])
def test_verdict_renders_and_injected_script_does_not_run(tmp_path: Path, status: str) -> None:
    data = sample_report(status)
    # A script that would run if anything were inserted unescaped: it changes the title and the verdict.
    data["model"]["name"] = f"gemma{INJECT}"
    data["stacks"]["eager"]["smoke"]["output_sample"] = INJECT
    html = render_html(Report.model_validate(data))
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    dom = _dump_dom(page, tmp_path)
    assert f"Verdict: {status}" in dom
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None and title.group(1).startswith(f"stackcert {status} — gemma")  # not 'PWNED'
    assert "<script" not in dom.lower()  # no live script element anywhere in the DOM
    assert "&lt;script&gt;document.title=" in dom  # the model text is shown, as text
