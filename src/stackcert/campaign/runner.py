"""The campaign driver: each run a Ray task with its resource requests, records updated as runs finish.

An embedded local Ray by default (small: the campaign's `ray.num_cpus`, a small object store, no
dashboard), or an existing cluster with `address`. Runs already done are never submitted again;
the others start, or resume their own run folder. The index is written after every finished run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stackcert.campaign.config import Entry, RaySpec
from stackcert.campaign.index import write_index
from stackcert.campaign.reaper import start_reaper
from stackcert.campaign.state import CampaignState, EntryRecord, now, save_state
from stackcert.campaign.task import locate, run_entry, run_finished, summary
from stackcert.errors import UsageError

OnChange = Callable[[CampaignState], None]


@contextmanager
def ray_session(address: str | None, spec: RaySpec) -> Iterator[Any]:
    """An embedded local Ray, or a connection to the cluster at `address`; shut down at the end."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            "campaigns need the ray package",
            where="stackcert campaign",
            fix="pip install 'stackcert[campaign]'",
        ) from None
    reaper = None if address else start_reaper()  # a killed campaign leaves no Ray process
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(
                address="local",  # always a new, private one: never someone else's cluster on this host
                num_cpus=spec.num_cpus,
                num_gpus=None,
                object_store_memory=spec.object_store_mb * 1024**2,
                include_dashboard=False,
                log_to_driver=False,
            )
    except Exception as exc:  # Ray's own errors vary by version: each is one line here
        if reaper is not None:
            os.close(reaper)
        raise UsageError(
            f"cannot start or reach Ray{f' at {address}' if address else ''}: {str(exc).splitlines()[0]}",
            where="--address" if address else "ray",
            fix="check the address (ray status on the head node)" if address else "see docs/campaign.md",
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()
        if reaper is not None:
            os.close(reaper)


def _check_fits(ray: Any, entries: list[Entry]) -> None:
    """A run asking for more than the whole cluster has would wait forever: refuse it now."""
    total = ray.cluster_resources()
    for entry in entries:
        for key, want in (("CPU", entry.num_cpus), ("GPU", entry.num_gpus)):
            if want > total.get(key, 0.0):
                raise UsageError(
                    f"run {entry.id} asks for {want:g} {key} but the Ray cluster has {total.get(key, 0.0):g}",
                    where=f"pairs.{entry.pair}.resources",
                    fix="lower the run's resources, or use a larger cluster (--address)",
                )


def _apply(record: EntryRecord, result: dict[str, Any], started: float) -> None:
    for key in ("status", "verdict", "perf_ratio", "exit_code", "report", "report_html", "error"):
        if key in result:
            setattr(record, key, result[key])
    record.finished = now()
    took = result.get("duration_s")  # the run's own time; else since it was submitted (queue included)
    record.duration_s = took if isinstance(took, float) else round(time.monotonic() - started, 1)


def _failure(record: EntryRecord, exc: BaseException, *, cancelled: bool) -> dict[str, Any]:
    """A task Ray could not finish (its worker died, or it was cancelled): located in the run's ledger."""
    run_dir = Path(record.run_dir)
    if run_finished(run_dir):
        return summary(run_dir)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    what = "cancelled" if cancelled else f"the worker running it died: {type(exc).__name__}: {first}"
    return {"status": "error", "error": locate(run_dir, what)}


def run_campaign(
    state: CampaignState,
    entries: list[Entry],
    *,
    address: str | None,
    ray_spec: RaySpec,
    on_change: OnChange | None = None,
    poll_s: float = 0.5,
) -> CampaignState:
    """Submit every run not done, record each as it finishes, write campaign.json and the index."""
    notify = on_change or (lambda _s: None)
    campaign_dir = Path(state.campaign_dir)
    todo = []
    for entry in entries:
        record = state.get(entry.id)
        if record.status == "done" or run_finished(Path(record.run_dir)):
            if record.status != "done":  # finished while the campaign that started it was killed
                _apply(record, summary(Path(record.run_dir)), time.monotonic())
            continue
        todo.append(entry)
    state.address = address
    save_state(state)
    write_index(state, campaign_dir)
    notify(state)
    if not todo:
        return state
    with ray_session(address, ray_spec) as ray:
        _check_fits(ray, todo)
        remote = ray.remote(max_retries=0, max_calls=1)(run_entry)
        pending: dict[Any, tuple[EntryRecord, float]] = {}
        for entry in todo:
            record = state.get(entry.id)
            options = remote.options(
                num_cpus=entry.num_cpus, num_gpus=entry.num_gpus, name=f"stackcert:{entry.id}"
            )
            ref = options.remote(entry.config.model_dump(mode="json"), record.run_dir, entry.timeout_s)
            record.status, record.error, record.started = "running", None, now()
            record.attempts += 1
            pending[ref] = (record, time.monotonic())
        save_state(state)
        notify(state)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
            for ref in ready:
                record, started = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.TaskCancelledError as exc:
                    result = _failure(record, exc, cancelled=True)
                except ray.exceptions.RayError as exc:
                    result = _failure(record, exc, cancelled=False)
                _apply(record, result, started)
                save_state(state)
                write_index(state, campaign_dir)
            notify(state)
    return state
