"""Wall time and engine starts of the whole demo run, next to FlagRelease's skill flow.

    flock /tmp/stackcert-vllm.lock .venv/bin/python benchmarks/pipeline_wallclock.py          # run the demo
    .venv/bin/python benchmarks/pipeline_wallclock.py --analyse runs/demo-20261122-160000   # an earlier run

Engine starts are counted from the ledger (`state.json` → engine_starts, one entry per server
process stackcert started). FlagRelease's flow starts the engine once in each of env-verify,
model-verify and perf-test, for each of its two stacks: 2 × 3 = 6.

The model-adaptation steps (weight gate A, the feature matrix, weight gate B) run one after the
other and change nothing else in the run, so their summed durations are what they add to the demo's
wall time (target: at most 3 minutes on the 2-core CI machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

FLAGRELEASE_STARTS_PER_STACK = 3  # env-verify, model-verify, perf-test each restart the service
TARGET_S = 15 * 60
ADAPTATION_STEPS = ("dummy_weights", "features", "weights")
ADAPTATION_TARGET_S = 3 * 60


def analyse(run_dir: Path, wall_s: float | None = None) -> dict[str, object]:
    state = json.loads((run_dir / "state.json").read_text())
    steps = state["steps"].values()
    starts = [datetime.fromisoformat(s["started"]) for s in steps if s.get("started")]
    ends = [datetime.fromisoformat(s["finished"]) for s in steps if s.get("finished")]
    if wall_s is None and starts and ends:
        wall_s = (max(ends) - min(starts)).total_seconds()
    per_stack = Counter(e["stack"] for e in state.get("engine_starts", []))
    report = json.loads((run_dir / "report.json").read_text()) if (run_dir / "report.json").exists() else {}
    return {
        "run_dir": str(run_dir),
        "wall_s": round(wall_s or 0.0, 1),
        "within_target": bool(wall_s and wall_s <= TARGET_S),
        "engine_starts": dict(per_stack),
        "engine_starts_total": sum(per_stack.values()),
        # per certified stack (the dummy-weight gate's start is stackcert's own extra check)
        "flagrelease_engine_starts": FLAGRELEASE_STARTS_PER_STACK
        * max(len([s for s in per_stack if "(dummy" not in s]), 2),
        "verdict": report.get("status"),
        "adaptation_s": round(sum(_duration(state, s) for s in ADAPTATION_STEPS), 1),
        "steps": {s["id"]: [s["status"], s.get("duration_s")] for s in steps},
    }


def _duration(state: dict[str, object], step: str) -> float:
    record = state["steps"].get(step) if isinstance(state.get("steps"), dict) else None  # type: ignore[union-attr]
    return float(record.get("duration_s") or 0.0) if isinstance(record, dict) else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyse", type=Path, help="analyse an earlier run directory instead of running")
    parser.add_argument("--run-dir", type=Path, default=Path("runs") / f"bench-demo-{int(time.time())}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wall = None
    run_dir = args.analyse
    if run_dir is None:
        exe = Path(sys.executable).parent / "stackcert"
        t0 = time.monotonic()
        proc = subprocess.run(
            [str(exe), "run", "--preset", "demo", "--run-dir", str(args.run_dir), "--json"],
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - t0
        run_dir = args.run_dir
        if not (run_dir / "state.json").exists():
            print(proc.stderr, file=sys.stderr)
            return 1
    data = analyse(run_dir, wall)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"run: {data['run_dir']}  verdict: {data['verdict']}")
    print(f"{'':34}{'stackcert':>12}{'FlagRelease':>14}")
    ours, theirs = data["engine_starts_total"], data["flagrelease_engine_starts"]
    print(f"{'engine starts (2 stacks)':34}{ours:>12}{theirs:>14}")
    print(f"{'wall time (s), target <= 900':34}{data['wall_s']:>12}{'-':>14}")
    print(f"{'adaptation steps (s), target <= 180':34}{data['adaptation_s']:>12}{'-':>14}")
    print(f"per stack: {data['engine_starts']}")
    for step, (status, dur) in data["steps"].items():  # type: ignore[attr-defined]
        print(f"  {step:18} {status:8} {dur if dur is not None else '-':>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
