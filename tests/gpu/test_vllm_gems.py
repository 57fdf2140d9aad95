"""The GPU pipeline through real vLLM: `stackcert run` with the `gpu` preset on real weights.

Reference: vLLM with native operators; candidate: the same vLLM with FlagGems applied in its engine
processes by stackcert's vLLM plugin (multiprocessing on, as users run it). Each test is one whole
`stackcert run` (CLI, subprocess); its run folder is packed into ``$STACKCERT_GPU_OUT``.

Needs: a CUDA GPU, vLLM and FlagGems importable, stackcert INSTALLED (its ``vllm.general_plugins``
entry point must be visible to vLLM's processes), and ``STACKCERT_GPU_MODEL`` = a Hugging Face
checkpoint folder with real weights (FlagGems replaces ``aten::uniform_``, so dummy weights would
differ between the stacks). How it was run: docs/results/gpu-vllm-gems.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

torch = pytest.importorskip("torch")
MODEL = os.environ.get("STACKCERT_GPU_MODEL", "")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(not (Path(MODEL) / "config.json").exists(), reason="STACKCERT_GPU_MODEL not set"),
]

CLI = "import sys; from stackcert.cli import main; sys.argv[0] = 'stackcert'; sys.exit(main())"


def _out(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("STACKCERT_GPU_OUT", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _config(exclude: list[str], *, bench: bool, consistency: bool) -> dict[str, Any]:
    from stackcert.runmodel.config import from_preset

    cfg = from_preset("gpu").model_dump(mode="json")
    cfg["name"] = "gpu-gems" + ("-no-" + "-".join(exclude) if exclude else "")
    cfg["model"].update(path=MODEL, served_name="gemma-3-270m")
    cfg["stacks"]["flaggems"]["operators"]["exclude"] = exclude
    cfg["phases"]["consistency"].update(
        enabled=consistency,
        options={"tokens": {"max_tokens": 32}, "sharegpt_texts": 0, "task_limit": 40},
    )
    cfg["phases"]["bench"]["enabled"] = bench
    cfg["phases"]["bisect"].update(timeout_s=480)
    return cfg


def _run(tmp_path: Path, cfg: dict[str, Any], limit: float) -> tuple[int, float, Path]:
    path = tmp_path / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    run_dir = tmp_path / cfg["name"]
    t0 = time.monotonic()
    argv = [sys.executable, "-c", CLI, "run", "--config", str(path), "--run-dir", str(run_dir)]
    try:
        rc = subprocess.run(argv, timeout=limit, check=False).returncode
    except subprocess.TimeoutExpired:  # the run's engines die with it (their guard)
        rc = -1
    wall = time.monotonic() - t0
    with tarfile.open(_out(tmp_path) / f"{cfg['name']}.tar.gz", "w:gz") as tar:
        tar.add(run_dir, arcname=cfg["name"])
    return rc, wall, run_dir


def _read(run_dir: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((run_dir / name).read_text(encoding="utf-8")))


def _steps(run_dir: Path) -> dict[str, Any]:
    state = _read(run_dir, "state.json")
    return dict(state["steps"])


def test_full_flaggems_crashes_and_bisect_names_mul(tmp_path: Path) -> None:
    """FlagGems full: the candidate engine dies; the bisection names `mul`, component flag_gems, L3."""
    rc, wall, run_dir = _run(tmp_path, _config([], bench=False, consistency=True), 555)
    steps = _steps(run_dir)
    report = _read(run_dir, "report.json")
    bisect = _read(run_dir, "bisect.json")
    result = bisect["result"]
    summary = {
        "rc": rc,
        "wall_s": round(wall, 1),
        "status": report["status"],
        "steps": {k: [v["status"], v.get("duration_s"), v.get("reason")] for k, v in steps.items()},
        "bisect": {k: bisect.get(k) for k in ("timing", "starts", "engine_starts", "duration_s")},
        "probes": result["probes_used"],
        "active": len(result["active_ops"]),
        "culprits": result["culprits"],
        "findings": bisect.get("findings"),
    }
    (_out(tmp_path) / "full-summary.json").write_text(json.dumps(summary, indent=2))
    assert steps["reference.serve"]["status"] == "pass"
    assert steps["candidate.serve"]["status"] == "fail"
    assert report["status"] in ("PARTIAL", "FAIL")
    assert result["status"] == "found" and result["verified"] and result["culprits"] == ["mul"]
    assert result["probes_used"] <= math.ceil(math.log2(len(result["active_ops"]))) + 2
    finding = bisect["findings"][0]
    assert (finding["component"], finding["layer"], finding["operator"]) == ("flag_gems", "L3", "mul")
    assert any("flag_gems/" in line for line in finding["excerpt"]["lines"])


def test_flaggems_without_mul_qualifies(tmp_path: Path) -> None:
    """The candidate re-run with `mul` excluded: it serves; consistency verdict and bench ratio recorded.

    Within 470 s only on a warm Triton cache; cold, the recorded run went over two device calls with
    `stackcert run --resume` (benchmarks/gpu/cert_call.sh, docs/results/gpu-vllm-gems.md).
    """
    rc, wall, run_dir = _run(tmp_path, _config(["mul"], bench=True, consistency=True), 470)
    steps = _steps(run_dir)
    report = _read(run_dir, "report.json")
    ops = _read(run_dir / "stacks" / "flaggems", "effective_ops.json")
    compare = _read(run_dir, "compare.json")
    consistency = _read(run_dir, "consistency.json")
    summary = {
        "rc": rc,
        "wall_s": round(wall, 1),
        "status": report["status"],
        "steps": {k: [v["status"], v.get("duration_s"), v.get("reason")] for k, v in steps.items()},
        "effective_count": len(ops["effective"]),
        "processes": ops["processes"],
        "consistency": consistency.get("status"),
        "perf_ratio": compare.get("perf_ratio"),
        "startup_s": {
            s: _read(run_dir / "stacks" / s, "server.json").get("startup_s") for s in ("native", "flaggems")
        },
    }
    (_out(tmp_path) / "nomul-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    assert steps["candidate.serve"]["status"] == "pass"
    assert ops["problems"] == [] and "mul" not in ops["effective"] and len(ops["effective"]) > 100
    assert any(p["process"].startswith("EngineCore") for p in ops["processes"])
    # decided: pass, or fail / retest (inconclusive at this sample size) with located findings
    assert consistency.get("status") in ("pass", "fail", "retest")
    if consistency.get("status") != "pass":
        assert consistency.get("findings") and all(f.get("message") for f in consistency["findings"])
    assert isinstance(compare.get("perf_ratio"), float)
