"""campaign.json: one record per run (status, verdict, perf ratio, run folder, report, error), written
atomically after every change so a killed campaign loses nothing that had finished."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from stackcert.campaign.config import Entry, RaySpec
from stackcert.errors import UsageError
from stackcert.jsonio import envelope, read_json, write_json_atomic

CAMPAIGN_FILE = "campaign.json"
PLAN_FILE = "plan.json"
INDEX_FILE = "index.html"
RUNS_DIR = "runs"

EntryStatus = Literal["pending", "running", "done", "error", "timeout"]


def now() -> str:
    """The time now, ISO 8601 UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class EntryRecord(BaseModel):
    """One run's place in the campaign and what it gave."""

    id: str
    model: str
    pair: str
    target: str
    reference: str
    candidate: str
    status: EntryStatus = "pending"
    verdict: str | None = Field(None, description="PASS | PARTIAL | FAIL (report.json's status)")
    perf_ratio: float | None = None
    exit_code: int | None = None
    run_dir: str
    report: str | None = Field(None, description="report.json of the run")
    report_html: str | None = None
    error: str | None = Field(None, description="why the run gave no verdict, located (step, file)")
    num_gpus: float = 0.0
    attempts: int = 0
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None


class CampaignState(BaseModel):
    """The campaign's records, in matrix order."""

    name: str
    campaign_dir: str
    address: str | None = Field(None, description="the Ray cluster (None: an embedded local Ray)")
    created: str = Field(default_factory=now)
    updated: str = Field(default_factory=now)
    entries: list[EntryRecord] = Field(default_factory=list)

    def get(self, entry_id: str) -> EntryRecord:
        """The record of a run by its id."""
        return next(e for e in self.entries if e.id == entry_id)

    def counts(self) -> dict[str, int]:
        """How many runs are in each status, and per verdict."""
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.status] = out.get(e.status, 0) + 1
            if e.verdict:
                out[e.verdict] = out.get(e.verdict, 0) + 1
        return out


def new_state(name: str, campaign_dir: Path, entries: list[Entry]) -> CampaignState:
    """Pending records for every run of the plan."""
    return CampaignState(
        name=name,
        campaign_dir=str(campaign_dir),
        entries=[
            EntryRecord(
                id=e.id,
                model=e.model,
                pair=e.pair,
                target=e.target,
                reference=e.config.reference,
                candidate=e.config.candidate,
                run_dir=str(campaign_dir / RUNS_DIR / e.id),
                num_gpus=e.num_gpus,
            )
            for e in entries
        ],
    )


def save_state(state: CampaignState) -> None:
    """campaign.json, atomically, inside the common envelope."""
    state.updated = now()
    path = Path(state.campaign_dir) / CAMPAIGN_FILE
    write_json_atomic(path, envelope("campaign", state.model_dump(mode="json")))


def save_plan(campaign_dir: Path, entries: list[Entry], ray: RaySpec) -> None:
    """plan.json: every run's validated config and resources (secrets redacted, like config.json)."""
    data = {"ray": ray.model_dump(mode="json"), "entries": [e.model_dump(mode="json") for e in entries]}
    write_json_atomic(campaign_dir / PLAN_FILE, envelope("campaign-plan", data))


def _payload(path: Path, key: str) -> Any:
    fix = "start a new campaign (these files are stackcert's own)"
    if not path.is_file():
        raise UsageError(
            f"no {path.name} in {path.parent}",
            where=str(path.parent),
            fix="give an earlier campaign's folder",
        )
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path.name}: {exc}", where=str(path), fix=fix) from None
    if not isinstance(data, dict) or key not in data:
        raise UsageError(f"{path.name} holds no '{key}'", where=str(path), fix=fix)
    return data


def load_state(campaign_dir: Path) -> CampaignState:
    """campaign.json of an earlier campaign; a damaged file is one line, never a traceback."""
    data = _payload(campaign_dir / CAMPAIGN_FILE, "entries")
    try:
        return CampaignState.model_validate(
            {k: v for k, v in data.items() if k in CampaignState.model_fields}
        )
    except ValidationError as exc:
        raise UsageError(
            f"{CAMPAIGN_FILE} does not match this stackcert version ({exc.error_count()} problem(s))",
            where=str(campaign_dir / CAMPAIGN_FILE),
            fix="start a new campaign",
        ) from None


def load_plan(campaign_dir: Path) -> tuple[list[Entry], RaySpec]:
    """The runs of an earlier campaign and its local Ray's sizes, as planned when it started."""
    data = _payload(campaign_dir / PLAN_FILE, "entries")
    try:
        return [Entry.model_validate(e) for e in data["entries"]], RaySpec.model_validate(data.get("ray", {}))
    except (ValidationError, TypeError) as exc:
        raise UsageError(
            f"{PLAN_FILE} does not match this stackcert version: {str(exc).splitlines()[0]}",
            where=str(campaign_dir / PLAN_FILE),
            fix="start a new campaign",
        ) from None
