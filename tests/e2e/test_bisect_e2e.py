"""Operator bisection end to end: the real demo Gemma-3 model under transformers, with faults planted
by the fault_ops TEST FIXTURE library (a fake operator library standing in for FlagGems on CPU).

Each bisection starts one probe worker (model loaded once) that serves all of its probes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackcert.config import OperatorSelection, StackSpec, load_preset
from stackcert.diagnose.probe import WorkerProbe, run_bisect
from stackcert.diagnose.probe_worker import WorkerSpec
from stackcert.engines.base import ModelRef
from stackcert.evidence.findings import Finding
from stackcert.oplibs import fault_ops

pytestmark = pytest.mark.e2e

# A reduced active set: 12 operators the demo model really runs.
ACTIVE = ["add", "cat", "cos", "embedding", "gelu", "mean", "mm", "mul", "neg", "pow", "rsqrt", "sin"]
STACKCERT = str(Path(sys.executable).parent / "stackcert")
LIMIT = math.ceil(math.log2(len(ACTIVE))) + 2


@pytest.fixture(scope="module")
def model(demo_model_dir: Path) -> ModelRef:
    return ModelRef(path=demo_model_dir, served_name="demo", tokenizer=demo_model_dir, dtype="float32")


@pytest.fixture(scope="module")
def worker(model: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProbe]:
    """One probe worker (one model load) shared by the bisections of this module."""
    _, cand = stacks({})
    assert cand.operators is not None
    spec = WorkerSpec(model_path=model.path, selection=cand.operators)
    with WorkerProbe(spec, cand, work_dir=tmp_path_factory.mktemp("worker"), timeout_per_probe=120) as probe:
        probe.effective()  # start it (load the model and run the reference) once, here
        yield probe


def stacks(faults: dict[str, str]) -> tuple[StackSpec, StackSpec]:
    preset = load_preset("fault")
    cand = preset.stack("faulty")
    ops = OperatorSelection(library="fault_ops", include=ACTIVE, faults=faults)
    return preset.stack("native"), cand.model_copy(update={"operators": ops})


def test_fixture_without_faults_keeps_native_output(worker: WorkerProbe) -> None:
    worker.select(OperatorSelection(library="fault_ops"))
    assert worker.effective() == fault_ops.ALL_OPS
    tokens = worker.generate([])
    assert tokens == worker.reference_tokens and len(tokens) == 8
    outcome = worker([])
    assert outcome.passed, outcome.reason
    assert outcome.metrics["max_abs_logprob_delta"] == 0.0


@pytest.mark.parametrize(
    ("faults", "category"),
    [({"mm": "crash"}, {"crash"}), ({"rsqrt": "nan"}, {"nan"}), ({"add": "drift"}, {"drift", "mismatch"})],
    ids=["crash", "nan", "drift"],
)
def test_single_planted_fault_is_found(
    model: ModelRef, worker: WorkerProbe, tmp_path: Path, faults: dict[str, str], category: set[str]
) -> None:
    ref, cand = stacks(faults)
    report = run_bisect(ref, cand, model, run_dir=tmp_path, timeout_per_probe=120, worker=worker)
    res = report.result
    assert res.status == "found", res.message
    assert res.culprits == list(faults) and res.exclude == list(faults)
    assert res.verified and res.probes_used <= LIMIT
    failing = {r.category for r in res.log if not r.passed}
    assert failing and failing <= category
    assert res.candidate is not None and res.candidate.operators is not None
    assert res.candidate.operators.exclude == list(faults)
    saved = json.loads(report.model_dump_json())  # what the pipeline writes as bisect.json
    assert saved["result"]["culprits"] == list(faults)
    assert saved["worker_starts"] == 0  # the shared worker served every probe, crashes included
    recorded = sorted((tmp_path / "bisect" / "operators").glob("probe-*-operators.json"))
    assert len(recorded) == res.probes_used


def test_two_culprits_and_traceback_fast_path(model: ModelRef, worker: WorkerProbe, tmp_path: Path) -> None:
    ref, cand = stacks({"gelu": "crash", "embedding": "nan"})
    hint = [Finding(step="verify", category="kernel_error", message="boom", operator="gelu")]
    res = run_bisect(
        ref, cand, model, run_dir=tmp_path, findings=hint, timeout_per_probe=120, worker=worker
    ).result
    assert res.status == "found", res.message
    assert sorted(res.culprits) == ["embedding", "gelu"]
    assert sorted(res.exclude) == ["embedding", "gelu"]
    assert res.verified
    assert res.log[0].purpose == "traceback fast path" and res.log[0].excluded == ["gelu"]
    assert not res.log[0].passed and res.log[0].category == "nan"  # gelu excluded, embedding still NaN


def test_cli_bisect_json(demo_model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(
        [
            STACKCERT,
            "bisect",
            "--preset",
            "fault",
            "--candidate",
            "faulty",
            "--fault",
            "cos=crash",
            "--include",
            "cos,sin,mm,mean",
            "--model",
            str(demo_model_dir),
            "--run-dir",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["status"] == "found" and data["culprits"] == ["cos"]
    assert data["candidate"]["operators"]["exclude"] == ["cos"]
    assert (tmp_path / "bisect.json").exists()


def test_cli_bad_fault_name_is_one_line(demo_model_dir: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            STACKCERT,
            "bisect",
            "--fault",
            "rsqrtt=nan",
            "--model",
            str(demo_model_dir),
            "--run-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2
    assert "did you mean 'rsqrt'" in out.stderr
    assert "Traceback" not in out.stderr
