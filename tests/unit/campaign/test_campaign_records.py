"""campaign.json, the HTML index, and resume: finished runs are never submitted again (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stackcert.campaign import runner
from stackcert.campaign.config import CampaignConfig, RaySpec
from stackcert.campaign.index import render_index
from stackcert.campaign.session import new_campaign, resume_campaign
from stackcert.campaign.state import load_state, save_state
from stackcert.campaign.task import locate, run_entry, run_finished, summary
from stackcert.cli.campaign_cmd import exit_code
from stackcert.errors import UsageError

CODES = {"PASS": 0, "PARTIAL": 3, "FAIL": 1}
URL = "http://127.0.0.1:9/v1"
PAIR = {
    "stacks": {
        "ref": {"name": "ref", "engine": "endpoint", "url": URL},
        "cand": {"name": "cand", "engine": "endpoint", "url": URL},
    },
    "reference": "ref",
    "candidate": "cand",
}


def _campaign() -> CampaignConfig:
    return CampaignConfig.model_validate(
        {
            "name": "t",
            "models": {"m<script>": {"source": "demo"}, "n": {"source": "demo"}},
            "pairs": {"p": PAIR},
            "targets": {"a": {}, "b": {}},
        }
    )


def finished_run(run_dir: Path, verdict: str = "PASS", ratio: float = 0.9) -> None:
    """A run folder as `stackcert run` leaves it: every step done, report.json and report.html."""
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = {s: {"id": s, "status": "pass"} for s in ("env", "compare", "report")}
    (run_dir / "state.json").write_text(json.dumps({"steps": steps}))
    report = {"status": verdict, "compare": {"perf_ratio": ratio}, "verdict": {"exit_code": CODES[verdict]}}
    (run_dir / "report.json").write_text(json.dumps(report))
    (run_dir / "report.html").write_text("<html></html>")


def test_new_campaign_writes_plan_and_records_and_refuses_a_second(tmp_path: Path) -> None:
    _, entries, ray = new_campaign(_campaign(), tmp_path / "c")
    assert len(entries) == 4 and ray == RaySpec()
    assert {e.status for e in load_state(tmp_path / "c").entries} == {"pending"}
    assert (tmp_path / "c" / "plan.json").is_file() and (tmp_path / "c" / "runs").stat().st_mode & 0o077 == 0
    with pytest.raises(UsageError, match="already holds a campaign"):
        new_campaign(_campaign(), tmp_path / "c")
    again, planned, _ = resume_campaign(tmp_path / "c")
    assert [e.id for e in again.entries] == [e.id for e in planned] == [e.id for e in entries]
    with pytest.raises(UsageError, match=r"no campaign\.json"):
        resume_campaign(tmp_path)


def test_resume_submits_nothing_when_every_run_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, entries, ray = new_campaign(_campaign(), tmp_path / "c")
    for i, record in enumerate(state.entries):
        finished_run(Path(record.run_dir), verdict="PASS" if i else "PARTIAL")
        if i % 2:  # recorded before the kill; the others finished after campaign.json was last written
            record.status, record.verdict, record.exit_code = "done", "PASS", 0
        else:
            record.status = "running"
    save_state(state)

    def no_ray(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Ray was started although every run had finished")

    monkeypatch.setattr(runner, "ray_session", no_ray)
    state, entries, ray = resume_campaign(tmp_path / "c")
    done = runner.run_campaign(state, entries, address=None, ray_spec=ray)
    assert {e.status for e in done.entries} == {"done"}
    assert done.entries[0].verdict == "PARTIAL" and done.entries[0].perf_ratio == 0.9
    assert (tmp_path / "c" / "index.html").is_file()
    assert exit_code(done) == 3  # the worst verdict: PARTIAL


def test_run_entry_does_not_redo_a_finished_run(tmp_path: Path) -> None:
    finished_run(tmp_path / "run")
    result = run_entry({"not": "a config"}, str(tmp_path / "run"), 1.0)
    assert result == summary(tmp_path / "run") and result["verdict"] == "PASS"


def test_finished_means_every_step_done_and_a_report(tmp_path: Path) -> None:
    assert not run_finished(tmp_path / "none")
    finished_run(tmp_path / "run")
    assert run_finished(tmp_path / "run")
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    state["steps"]["report"] = {"id": "report", "status": "running"}
    (tmp_path / "run" / "state.json").write_text(json.dumps(state))
    assert not run_finished(tmp_path / "run")
    assert "at step report" in locate(tmp_path / "run", "worker died")
    assert locate(tmp_path / "nowhere", "worker died") == "worker died"


def test_index_is_a_model_by_target_matrix_with_relative_links_and_escaped_text(tmp_path: Path) -> None:
    state, _, _ = new_campaign(_campaign(), tmp_path / "c")
    first = state.entries[0]
    finished_run(Path(first.run_dir))
    first.status, first.verdict, first.perf_ratio = "done", "PASS", 1.234
    first.report_html = str(Path(first.run_dir) / "report.html")
    state.entries[1].status, state.entries[1].error = "error", "crashed: <img src=x onerror=alert(1)>"
    html = render_index(state, tmp_path / "c")
    assert f'href="runs/{first.id}/report.html"' in html and "ratio 1.23" in html
    assert "<script>" not in html and "m&lt;script&gt;" in html
    assert "<img" not in html and "&lt;img src=x" in html
    assert html.count("<th>m&lt;script&gt;</th>") == 1 and "<th>b</th>" in html


def test_exit_code_is_fail_while_a_run_gave_no_verdict(tmp_path: Path) -> None:
    state, _, _ = new_campaign(_campaign(), tmp_path / "c")
    for record in state.entries:
        record.status, record.exit_code = "done", 0
    assert exit_code(state) == 0
    state.entries[0].status = "timeout"
    assert exit_code(state) == 1


def _entry_config(tmp_path: Path) -> dict[str, Any]:
    _, entries, _ = new_campaign(_campaign(), tmp_path / "c")
    return entries[0].config.model_dump(mode="json")


def test_a_crashing_run_is_an_entry_with_its_located_error_and_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stackcert.campaign import task

    def crash(config: Any, ledger: Any) -> Any:
        ledger.start("env")
        raise RuntimeError("boom")

    monkeypatch.setattr(task, "execute", crash)
    result = run_entry(_entry_config(tmp_path), str(tmp_path / "run"), 30.0)
    assert result["status"] == "error" and "crashed: RuntimeError: boom" in result["error"]
    assert "at step env" in result["error"]
    assert "boom" in (tmp_path / "run" / "logs" / "campaign-task.traceback.txt").read_text()


def test_a_run_past_its_limit_is_interrupted_and_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from stackcert.campaign import task
    from stackcert.pipeline.ledger import Ledger

    def hang(config: Any, ledger: Any) -> Any:
        ledger.start("env")
        try:
            while True:
                time.sleep(0.05)
        except KeyboardInterrupt:  # what the pipeline does with Ctrl-C: the step back to pending
            ledger.interrupt("env")
            raise

    monkeypatch.setattr(task, "execute", hang)
    t0 = time.monotonic()
    result = run_entry(_entry_config(tmp_path), str(tmp_path / "run"), 0.5)
    assert result["status"] == "timeout" and "ran past its 0.5s limit (at step env" in result["error"]
    assert time.monotonic() - t0 < 20
    assert Ledger.open(tmp_path / "run").first_unfinished() == "env"  # resumable from its ledger
