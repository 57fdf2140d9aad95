"""`stackcert campaign` end to end on an embedded local Ray: three small real runs (endpoint stacks
against FAKE OpenAI servers at protocol level; no vLLM is started) and one that hangs past its limit.

The campaign process is killed (SIGKILL) once one run has finished and the slow one is mid-run; the
resume does not redo the finished run, resumes the interrupted one from its own ledger, runs the
rest, and writes campaign.json and the HTML index. Ray's processes die with the killed campaign.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web
from tests.unit.smoke.fake_openai_server import FakeOpenAIServer

# Two Ray starts (~15 s each on 2 busy cores) and four runs of ~15 s: about 2 minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EXE = Path(sys.executable).parent / "stackcert"


class SlowFake(FakeOpenAIServer):
    """A FAKE server that takes 0.4 s per completion: the run using it is still running at the kill."""

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.4)
        return await super()._completions(request)


def _stacks(ref: str, cand: str) -> str:
    return (
        f"    stacks:\n"
        f"      ref: {{name: ref, engine: endpoint, url: {ref}/v1}}\n"
        f"      cand: {{name: cand, engine: endpoint, url: {cand}/v1}}\n"
        f"    reference: ref\n    candidate: cand\n"
    )


def campaign_yaml(good: str, twin: str, slow: str, hang: str) -> str:
    """Pairs fast, slow and hanging on one model, fast also on a second target: four runs."""
    return (
        "name: e2e-ray\nmodels:\n  demo: {source: demo}\npairs:\n"
        f"  fast:\n{_stacks(good, twin)}"
        f"  slow:\n{_stacks(slow, good)}"
        "    overrides: {phases: {bench: {options: {num_prompts: 12}}}}\n"
        f"  hanging:\n{_stacks(good, hang)}"
        "    resources: {timeout_s: 20}\n"
        "targets:\n  local: {kind: local}\n  again: {kind: local}\n"
        "matrix:\n  exclude:\n"
        "    - {model: demo, pair: slow, target: again}\n"
        "    - {model: demo, pair: hanging, target: again}\n"
        "ray: {num_cpus: 2, object_store_mb: 100}\n"
        "overrides:\n"
        "  phases:\n"
        "    smoke: {options: {offline: false, max_tokens: 8, concurrency: 2}}\n"
        "    bench:\n"
        "      profiles: [demo]\n"
        "      options: {num_prompts: 2, concurrency: [1], output_len: 8, warmup: 0}\n"
        "    consistency: {enabled: false}\n"
        "    bisect: {enabled: false}\n"
        "  gates: {require_consistency: false, perf_ratio: 0.01}\n"
    )


def _records(folder: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((folder / "campaign.json").read_text())
    except (OSError, ValueError):
        return {}
    return {e["id"]: e for e in data["entries"]}


def _steps(run_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        return dict(json.loads((run_dir / "state.json").read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return {}


def _gone(pids: list[int], within_s: float) -> list[int]:
    """The pids still alive after within_s (zombies count as gone)."""
    deadline = time.monotonic() + within_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        time.sleep(0.5)
    return alive


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start the campaign, SIGKILL it mid-way, resume it; what each phase saw."""
    root = tmp_path_factory.mktemp("campaign")
    folder = root / "out"
    with (
        FakeOpenAIServer(name="good") as good,
        FakeOpenAIServer(name="twin") as twin,
        SlowFake(name="slow") as slow,
        FakeOpenAIServer(name="hang", mode="hang") as hang,
    ):
        (root / "campaign.yaml").write_text(
            campaign_yaml(good.base_url, twin.base_url, slow.base_url, hang.base_url)
        )
        t0 = time.monotonic()
        log = (root / "first.log").open("w")
        proc = subprocess.Popen(
            [str(EXE), "campaign", str(root / "campaign.yaml"), "--campaign-dir", str(folder), "--json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        slow_dir = folder / "runs" / "demo__slow__local"
        killed_at: dict[str, Any] = {}
        try:
            while time.monotonic() - t0 < 240 and proc.poll() is None:
                done = [k for k, e in _records(folder).items() if e["status"] == "done"]
                slow_steps = _steps(slow_dir)
                if (
                    done
                    and slow_steps.get("reference.serve", {}).get("status") == "pass"
                    and not (slow_dir / "report.json").exists()
                ):
                    killed_at = {"done": done, "slow": slow_steps}
                    break
                time.sleep(0.3)
            family = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            log.close()
        first_s = time.monotonic() - t0
        assert killed_at, (root / "first.log").read_text()[-3000:]
        left = _gone(family, 60)
        for pid in left:  # ours: do not leave them on a shared machine, but fail
            os.kill(pid, signal.SIGKILL)
        reports = {k: (folder / "runs" / k / "report.json").stat().st_mtime_ns for k in killed_at["done"]}
        t1 = time.monotonic()
        resumed = subprocess.run(
            [str(EXE), "campaign", "--resume", str(folder), "--json"],
            capture_output=True,
            text=True,
            timeout=400,
        )
        yield {
            "folder": folder,
            "killed_at": killed_at,
            "left": left,
            "reports": reports,
            "resumed": resumed,
            "first_s": first_s,
            "resume_s": time.monotonic() - t1,
        }


def test_campaign_kill_leaves_no_ray_process(campaign: dict[str, Any]) -> None:
    assert campaign["left"] == [], "Ray processes outlived the killed campaign"


def test_campaign_resume_finishes_every_run(campaign: dict[str, Any]) -> None:
    resumed = campaign["resumed"]
    assert resumed.returncode == 1, resumed.stderr[-3000:]  # the hanging run gave no verdict
    printed = json.loads(resumed.stdout)
    entries = {e["id"]: e for e in printed["entries"]}
    assert set(entries) == {
        "demo__fast__local",
        "demo__fast__again",
        "demo__slow__local",
        "demo__hanging__local",
    }
    for key in ("demo__fast__local", "demo__fast__again", "demo__slow__local"):
        e = entries[key]
        assert e["status"] == "done" and e["verdict"] == "PASS", e
        assert e["perf_ratio"] is not None and Path(e["report_html"]).is_file()
    hang = entries["demo__hanging__local"]
    assert hang["status"] == "timeout" and "at step candidate.smoke" in hang["error"], hang
    print(f"campaign e2e: first part {campaign['first_s']:.0f}s, resume {campaign['resume_s']:.0f}s")


def test_campaign_resume_does_not_redo_finished_runs(campaign: dict[str, Any]) -> None:
    records = _records(campaign["folder"])
    for key, mtime in campaign["reports"].items():
        assert (campaign["folder"] / "runs" / key / "report.json").stat().st_mtime_ns == mtime
        assert records[key]["attempts"] == 1


def test_campaign_interrupted_run_resumes_from_its_ledger(campaign: dict[str, Any]) -> None:
    before = campaign["killed_at"]["slow"]
    after = _steps(campaign["folder"] / "runs" / "demo__slow__local")
    for step_id, rec in before.items():
        if rec["status"] == "pass":  # done before the kill: kept, not run again
            assert after[step_id]["finished"] == rec["finished"], step_id
    assert _records(campaign["folder"])["demo__slow__local"]["attempts"] == 2


def test_campaign_index_links_every_report(campaign: dict[str, Any]) -> None:
    html = (campaign["folder"] / "index.html").read_text()
    for key in ("demo__fast__local", "demo__fast__again", "demo__slow__local"):
        assert f'href="runs/{key}/report.html"' in html
    assert "<th>demo</th>" in html and "<th>again</th>" in html and "timeout" in html
