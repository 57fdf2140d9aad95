"""One `stackcert run` of the `gpu` preset on the GPU host, split over device calls with `--resume`.

A device call lasts at most 10 minutes; a cold run of both stacks (engine starts with Triton
compiling, smoke, bench, consistency) does not fit in one. This driver starts the run (or resumes
it), and at ``--stop-at`` (epoch seconds) sends SIGTERM, which `stackcert run` turns into a clean
interruption (engines stopped, the running step put back to pending). The next call continues it
with ``stackcert run --resume RUN_DIR`` while the host is still warm (/tmp survives).

    python3 cert_run.py start  --name NAME [--exclude mul] [--graphs] [--no-bench|...]
                               [--prompts-file F] --stop-at T
    python3 cert_run.py resume --name NAME --stop-at T

Run folder: /tmp/stackcert_runs/NAME. Model: $STACKCERT_GPU_MODEL (a converted checkpoint, real
weights). Writes into $OUT: NAME-<call>.summary.json (steps, verdict, consistency, ratio,
operators), NAME-<call>.tar.gz (the run folder), and report.json / report.md / state.json copies
once the report exists. Prints every ledger change with the seconds since the call began.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

RUNS = Path(os.environ.get("STACKCERT_GPU_RUNS", "/tmp/stackcert_runs"))
CLI = "import sys; from stackcert.cli import main; sys.argv[0] = 'stackcert'; sys.exit(main())"
T0 = time.time()


def say(msg: str) -> None:
    print(f"[cert_run +{time.time() - T0:6.1f}s] {msg}", flush=True)


def config(
    name: str,
    exclude: list[str],
    *,
    graphs: bool,
    consistency: bool,
    bench: bool,
    bisect: bool = True,
    features: bool = True,
    weights: bool = True,
    dummy: bool = True,
    prompts_file: str = "",
) -> dict[str, Any]:
    """The `gpu` preset as tests/gpu/test_vllm_gems.py runs it (same phases, same options).

    ``prompts_file``: a JSONL of {"prompt": ...}; it replaces the 16 built-in prompts in BOTH the
    greedy-token phase and the teacher-forced log-prob phase (consistency/phases.py `_prompts`), so
    with ``sharegpt_texts: 0`` the log-prob check scores exactly those texts, in one round.
    """
    from stackcert.runmodel.config import from_preset

    cfg = from_preset("gpu").model_dump(mode="json")
    cfg["name"] = name
    cfg["model"].update(path=os.environ["STACKCERT_GPU_MODEL"], served_name="gemma-3-270m")
    cfg["stacks"]["flaggems"]["operators"]["exclude"] = exclude
    if graphs:  # CUDA graphs (and vLLM's torch.compile) on both stacks
        for stack in cfg["stacks"].values():
            stack["engine_args"]["enforce_eager"] = False
    options: dict[str, Any] = {"tokens": {"max_tokens": 32}, "sharegpt_texts": 0, "task_limit": 40}
    if prompts_file:
        options["prompts_file"] = str(Path(prompts_file).resolve())
    cfg["phases"]["consistency"].update(enabled=consistency, options=options)
    cfg["phases"]["bench"]["enabled"] = bench
    cfg["phases"]["bisect"].update(enabled=bisect, timeout_s=480)
    cfg["phases"]["features"]["enabled"] = features
    cfg["phases"]["weights"].update(enabled=weights, dummy=dummy)
    return cfg


def read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def ledger(run_dir: Path) -> dict[str, tuple[str, Any]]:
    steps = read(run_dir / "state.json").get("steps", {})
    return {k: (v.get("status"), v.get("duration_s")) for k, v in steps.items()}


def watch(argv: list[str], run_dir: Path, stop_at: float, log: Path) -> int:
    """Run the CLI; print ledger changes; SIGTERM at stop_at (a clean interruption), SIGKILL 45 s later."""
    with log.open("a", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        seen: dict[str, tuple[str, Any]] = {}
        termed = 0.0
        while proc.poll() is None:
            time.sleep(2)
            now = ledger(run_dir)
            for step, value in now.items():
                if seen.get(step) != value and value[0] not in (None, "pending"):
                    say(f"{step}: {value[0]}" + (f" ({value[1]:.1f} s)" if value[1] else ""))
            seen = now
            if not termed and time.time() >= stop_at:
                say("stop time reached: SIGTERM (stackcert stops its engines; resume continues)")
                proc.send_signal(signal.SIGTERM)
                termed = time.time()
            elif termed and time.time() - termed > 45:
                say("still running 45 s after SIGTERM: SIGKILL to its process group")
                os.killpg(proc.pid, signal.SIGKILL)
                break
        rc = proc.wait()
        for step, value in ledger(run_dir).items():
            if seen.get(step) != value and value[0] not in (None, "pending"):
                say(f"{step}: {value[0]}" + (f" ({value[1]:.1f} s)" if value[1] else ""))
    return rc


def summary(run_dir: Path, rc: int, wall: float) -> dict[str, Any]:
    state = read(run_dir / "state.json")
    report = read(run_dir / "report.json")
    compare = read(run_dir / "compare.json")
    cons = read(run_dir / "consistency.json")
    out: dict[str, Any] = {
        "rc": rc,
        "call_wall_s": round(wall, 1),
        "steps": {
            k: [v.get("status"), v.get("duration_s"), v.get("reason")]
            for k, v in state.get("steps", {}).items()
        },
        "engine_starts": state.get("engine_starts"),
        "report_status": report.get("status"),
        "verdict": report.get("verdict"),
        "perf_ratio": compare.get("perf_ratio"),
        "perf": compare.get("perf"),
        "consistency_status": cons.get("status"),
        "consistency": {k: cons.get(k) for k in ("tokens", "logprobs", "tasks") if k in cons},
        "consistency_findings": cons.get("findings"),
    }
    bis = read(run_dir / "bisect.json")
    if bis:
        res = bis.get("result") or {}
        out["bisect"] = {
            k: bis.get(k)
            for k in ("duration_s", "active_count", "traceback_operator", "traceback_source", "engine_starts",
                      "timing", "starts", "findings")
        }
        out["bisect"]["result"] = {k: v for k, v in res.items() if k not in ("active_ops",)}
        out["bisect"]["active_ops"] = len(res.get("active_ops") or [])
    for name in ("features", "weights", "weights_dummy"):
        data = read(run_dir / f"{name}.json")
        if data:
            out[name] = data
    out["report_findings"] = report.get("findings")
    for stack in ("native", "flaggems"):
        info = read(run_dir / "stacks" / stack / "server.json")
        ops = read(run_dir / "stacks" / stack / "effective_ops.json")
        out[stack] = {
            "startup_s": info.get("startup_s"),
            "phases": info.get("phases"),
            "effective_count": len(ops.get("effective") or []) if ops else None,
            "mul_active": ("mul" in (ops.get("effective") or [])) if ops else None,
            "processes": [p.get("process") for p in ops.get("processes", [])] if ops else None,
            "problems": ops.get("problems") if ops else None,
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("start", "resume"))
    p.add_argument("--name", required=True)
    p.add_argument("--exclude", default="", help="comma list of FlagGems operators to exclude")
    p.add_argument("--graphs", action="store_true", help="enforce_eager: false on both stacks")
    p.add_argument("--no-consistency", action="store_true")
    p.add_argument("--no-bench", action="store_true")
    p.add_argument("--no-bisect", action="store_true")
    p.add_argument("--no-features", action="store_true", help="phases.features.enabled: false")
    p.add_argument("--no-weights", action="store_true", help="phases.weights.enabled: false (gates A and B)")
    p.add_argument("--no-dummy", action="store_true", help="phases.weights.dummy: false (no gate A start)")
    p.add_argument("--prompts-file", default="", help="JSONL prompts for the greedy and log-prob phases")
    p.add_argument("--stop-at", type=float, required=True, help="epoch seconds: SIGTERM the run then")
    p.add_argument("--tag", default="", help="this call's tag in the file names (default: the mode)")
    a = p.parse_args()
    out = Path(os.environ.get("OUT", "/tmp/cert_out"))
    out.mkdir(parents=True, exist_ok=True)
    run_dir = RUNS / a.name
    tag = a.tag or a.mode
    log = out / f"{a.name}-{tag}.cli.log"
    if a.mode == "start":
        import yaml

        cfg = config(
            a.name,
            [x for x in a.exclude.split(",") if x],
            graphs=a.graphs,
            consistency=not a.no_consistency,
            bench=not a.no_bench,
            bisect=not a.no_bisect,
            features=not a.no_features,
            weights=not a.no_weights,
            dummy=not a.no_dummy,
            prompts_file=a.prompts_file,
        )
        RUNS.mkdir(parents=True, exist_ok=True)
        cfg_path = RUNS / f"{a.name}.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        argv = [sys.executable, "-c", CLI, "run", "--config", str(cfg_path), "--run-dir", str(run_dir)]
    else:
        argv = [sys.executable, "-c", CLI, "run", "--resume", str(run_dir)]
    say(f"{a.mode} {run_dir}; stop at +{a.stop_at - T0:.0f}s; argv: {' '.join(argv[3:])}")
    rc = watch(argv, run_dir, a.stop_at, log)
    wall = time.time() - T0
    say(f"stackcert exited rc={rc} after {wall:.1f} s")
    result = summary(run_dir, rc, wall)
    (out / f"{a.name}-{tag}.summary.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: result[k] for k in ("rc", "report_status", "perf_ratio", "consistency_status")}))
    if result["verdict"]:
        print("verdict reasons:", json.dumps(result["verdict"].get("reasons"), indent=1))
    with tarfile.open(out / f"{a.name}-{tag}.tar.gz", "w:gz") as tar:
        tar.add(run_dir, arcname=a.name)
    for name in ("report.json", "report.md", "state.json", "bisect.json"):
        if (run_dir / "report.json").exists() and (run_dir / name).exists():
            shutil.copy(run_dir / name, out / f"{a.name}.{name}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
