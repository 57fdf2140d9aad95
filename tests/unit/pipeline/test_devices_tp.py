"""Multi-chip controls: TP/PP stack fields, their vLLM flags, the default TP, the preflight's device
check on the host and on a (fake) Ray cluster, and `stackcert run` stopping a TP=8 on this CPU host."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from stackcert.config import StackSpec
from stackcert.engines import vllm
from stackcert.engines.base import ModelRef
from stackcert.env.accel import AcceleratorReport, Device
from stackcert.errors import UsageError
from stackcert.pipeline.devices import check_devices, device_count, with_parallel_defaults
from stackcert.runmodel.config import RunConfig

MODEL = ModelRef(path=Path("/m"), tokenizer=Path("/m"), served_name="m")


def _config(**cand: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "model": {"source": "demo"},
            "stacks": {"a": {"name": "a"}, "b": {"name": "b", **cand}},
            "reference": "a",
            "candidate": "b",
        }
    )


def _gpus(n: int, visible: str | None = None) -> tuple[AcceleratorReport, ...]:
    return (
        AcceleratorReport(
            vendor="nvidia",
            display="NVIDIA",
            tool="nvidia-smi",
            count=n,
            devices=[Device(index=i) for i in range(n)],
            driver_version=None,
            visible_devices_env="CUDA_VISIBLE_DEVICES",
            visible_devices=visible,
            flagcx_adaptor=None,
            flagtree_backend=None,
        ),
    )


def test_parallel_sizes_are_validated_and_live_on_the_stack() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        StackSpec(name="v", tensor_parallel_size=0)
    moved = StackSpec(name="v", engine_args={"tensor_parallel_size": 2, "enforce_eager": True})
    assert moved.tensor_parallel_size == 2 and moved.engine_args == {"enforce_eager": True}
    with pytest.raises(ValidationError, match="set twice"):
        StackSpec(name="v", tensor_parallel_size=4, engine_args={"tensor_parallel_size": 2})
    with pytest.raises(ValidationError, match="needs the vllm engine"):
        StackSpec(name="h", engine="transformers", tensor_parallel_size=2)
    stack = StackSpec(name="v", tensor_parallel_size=4, pipeline_parallel_size=2)
    assert stack.parallel_devices == 8 and StackSpec(name="v").parallel_devices is None


def test_vllm_gets_the_parallel_flags() -> None:
    argv, _ = vllm.server_argv(
        StackSpec(name="v", tensor_parallel_size=4, pipeline_parallel_size=2), MODEL, 1
    )
    assert argv[argv.index("--tensor-parallel-size") + 1] == "4"
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
    plain, _ = vllm.server_argv(StackSpec(name="v"), MODEL, 1)
    assert "--tensor-parallel-size" not in plain  # unset: the pipeline fills in the host's devices


def test_device_count_cpu_is_one_and_visible_devices_narrow_it() -> None:
    assert device_count(StackSpec(name="v"), ()) == 1  # a CPU host: one device
    assert device_count(StackSpec(name="v"), _gpus(8)) == 8
    assert device_count(StackSpec(name="v", env={"CUDA_VISIBLE_DEVICES": "0,1"}), _gpus(8)) == 2
    assert device_count(StackSpec(name="v", engine_args={"device": "cpu"}), _gpus(8)) == 1


def test_tp_defaults_to_the_host_devices() -> None:
    config = with_parallel_defaults(_config(), counter=lambda s: 4)
    assert config.stacks["a"].tensor_parallel_size == 4
    kept = with_parallel_defaults(_config(tensor_parallel_size=2), counter=lambda s: 4)
    assert kept.stacks["b"].tensor_parallel_size == 2
    cpu = with_parallel_defaults(_config(), counter=lambda s: device_count(s, ()))
    assert cpu.stacks["b"].tensor_parallel_size == 1


def test_tp_above_the_devices_stops_in_one_line() -> None:
    with pytest.raises(UsageError) as err:
        check_devices(_config(tensor_parallel_size=8), counter=lambda s: 1)
    assert err.value.what == "requested TP=8 but only 1 device"
    with pytest.raises(UsageError, match=r"requested TP=2 × PP=2 = 4 but only 2 devices"):
        check_devices(_config(tensor_parallel_size=2, pipeline_parallel_size=2), counter=lambda s: 2)
    check_devices(_config(tensor_parallel_size=2, pipeline_parallel_size=2), counter=lambda s: 4)
    check_devices(_config(), counter=lambda s: 1)  # the default always fits


def test_ray_backend_checks_the_cluster_gpus_not_the_host() -> None:
    asked: list[str | None] = []

    def cluster(address: str | None) -> float:
        asked.append(address)
        return 8.0

    ray_args = {"engine_args": {"distributed_executor_backend": "ray"}, "env": {"RAY_ADDRESS": "head:6379"}}

    def never(stack: StackSpec) -> int:
        assert stack.name == "a", "the host is not asked for a Ray stack"
        return 1

    check_devices(
        _config(tensor_parallel_size=4, pipeline_parallel_size=2, **ray_args),
        counter=never,
        cluster_gpus=cluster,
    )
    assert asked == ["head:6379"]
    with pytest.raises(UsageError, match=r"requested TP=8 × PP=2 = 16 but only 8 devices in the Ray cluster"):
        check_devices(
            _config(tensor_parallel_size=8, pipeline_parallel_size=2, **ray_args),
            counter=never,
            cluster_gpus=cluster,
        )
    # Ray stacks keep vLLM's own default TP (1): the host's count says nothing about the cluster
    assert with_parallel_defaults(_config(**ray_args), counter=never).stacks["b"].tensor_parallel_size is None


def test_run_with_tp8_on_this_host_is_one_line_and_exit_2_before_a_run_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "tp.yaml"
    cfg.write_text(
        "model: {source: demo}\nreference: a\ncandidate: b\nstacks:\n"
        "  a: {name: a, engine: vllm}\n  b: {name: b, engine: vllm, tensor_parallel_size: 8}\n"
    )
    t0 = time.monotonic()
    code = "import sys; from stackcert.cli import main; sys.argv[0] = 'stackcert'; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--config", str(cfg), "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "requested TP=8 but only" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists() and time.monotonic() - t0 < 60
