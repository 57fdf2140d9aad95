"""The probed vendor's runtime settings reach the stacks that run here, and the report says so."""

from __future__ import annotations

from pathlib import Path

from stackcert.env.accel import AcceleratorReport
from stackcert.env.probe import HostInfo
from stackcert.pipeline.context import Outcome
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.reporting import build_report
from stackcert.pipeline.runner import PLAN, Pipeline
from stackcert.report.render import render_markdown
from stackcert.runmodel.config import from_preset
from stackcert.status import Status


def _host(vendor: str | None) -> HostInfo:
    accelerators = []
    if vendor is not None:
        accelerators.append(
            AcceleratorReport(
                vendor=vendor,
                display=vendor,
                tool="npu-smi",
                count=1,
                devices=[],
                driver_version=None,
                visible_devices_env="ASCEND_RT_VISIBLE_DEVICES",
                flagcx_adaptor=None,
                flagtree_backend=None,
            )
        )
    return HostInfo(
        python="3.11",
        python_executable="/p",
        arch="aarch64",
        os="Linux",
        disk_path="/",
        accelerators=accelerators,
    )


def _pipe(tmp_path: Path, vendor: str | None) -> Pipeline:
    cfg = from_preset("demo", cuda=False)
    eager = cfg.stacks["eager"]
    cfg.stacks["eager"] = eager.model_copy(update={"env": {**eager.env, "TRITON_ALL_BLOCKS_PARALLEL": "0"}})
    compiled = cfg.stacks["compiled"]  # a stack that does not choose eager or graph mode itself
    args = {k: v for k, v in compiled.engine_args.items() if k != "enforce_eager"}
    cfg.stacks["compiled"] = compiled.model_copy(update={"engine_args": args})
    pipe = Pipeline(cfg, Ledger.create(tmp_path, PLAN))
    pipe.step("env", lambda: Outcome(status=Status.PASS, result=_host(vendor)), 5)
    return pipe


def test_ascend_settings_are_applied_under_the_stacks_own(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, "ascend")
    cand, ref = pipe.ctx.stack("candidate"), pipe.ctx.stack("reference")
    assert cand.env["TRITON_ALL_BLOCKS_PARALLEL"] == "1"  # the vendor's setting
    assert ref.env["TRITON_ALL_BLOCKS_PARALLEL"] == "0"  # the stack's own value wins
    assert cand.engine_args["enforce_eager"] is True  # Ascend runs eager when the stack does not say
    assert pipe.config.stacks["compiled"].env.get("TRITON_ALL_BLOCKS_PARALLEL") is None  # config untouched
    report = build_report(pipe.ctx)
    assert report.vendor_runtime is not None and report.vendor_runtime.vendor == "ascend"
    assert "TRITON_ALL_BLOCKS_PARALLEL=1" in render_markdown(report)


def test_no_accelerator_changes_nothing(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, None)
    assert pipe.ctx.stack("candidate") == pipe.config.stacks["compiled"]
    assert build_report(pipe.ctx).vendor_runtime is None
