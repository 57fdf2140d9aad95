"""Opening a campaign: a new campaign folder with its plan and records, or an earlier one to resume."""

from __future__ import annotations

from pathlib import Path

from stackcert.campaign.config import CampaignConfig, Entry, RaySpec, expand
from stackcert.campaign.state import (
    CAMPAIGN_FILE,
    RUNS_DIR,
    CampaignState,
    load_plan,
    load_state,
    new_state,
    save_plan,
    save_state,
)
from stackcert.errors import UsageError
from stackcert.jsonio import private_dir
from stackcert.pipeline.session import new_folder

Opened = tuple[CampaignState, list[Entry], RaySpec]


def new_campaign(campaign: CampaignConfig, campaign_dir: Path | None = None) -> Opened:
    """Expand and validate every run, then create the folder with plan.json and campaign.json."""
    entries = expand(campaign)  # bad input stops here, before the folder or Ray exists
    campaign_dir = new_folder(
        campaign.output_dir, campaign.name, campaign_dir, CAMPAIGN_FILE, kind="campaign"
    )
    private_dir(campaign_dir / RUNS_DIR)  # run folders hold logs and answers: owner only
    campaign_dir = campaign_dir.resolve()
    save_plan(campaign_dir, entries, campaign.ray)
    state = new_state(campaign.name, campaign_dir, entries)
    save_state(state)
    return state, entries, campaign.ray


def resume_campaign(campaign_dir: Path) -> Opened:
    """The records and plan of an earlier campaign; runs not done go again (their folders resume)."""
    campaign_dir = campaign_dir.resolve()
    state = load_state(campaign_dir)
    entries, ray = load_plan(campaign_dir)
    known = {e.id for e in state.entries}
    if {e.id for e in entries} != known:
        raise UsageError(
            "plan.json and campaign.json name different runs",
            where=str(campaign_dir),
            fix="start a new campaign (these files are stackcert's own)",
        )
    state.campaign_dir = str(campaign_dir)
    for record in state.entries:  # a folder moved since: its runs moved with it
        record.run_dir = str(campaign_dir / RUNS_DIR / record.id)
    return state, entries, ray
