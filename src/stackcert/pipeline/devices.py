"""Multi-chip checks: how many devices a stack may use, its default tensor-parallel size, and the Ray
cluster's GPUs when vLLM serves across hosts (`distributed_executor_backend: ray`).

A CPU-only host counts as one device: vLLM-CPU runs one tensor-parallel rank there, so TP defaults
to 1 and a TP × PP above 1 stops in the preflight (`requested TP=8 but only 1 device`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from stackcert.config import StackSpec
from stackcert.env.accel import AcceleratorReport, detect_accelerators
from stackcert.env.target_probe import probe_target
from stackcert.errors import UsageError
from stackcert.runmodel.config import RunConfig
from stackcert.targets import TargetSpec, open_target

ClusterGpus = Callable[[str | None], float]


@functools.cache
def host_accelerators() -> tuple[AcceleratorReport, ...]:
    """The accelerators stackcert.env detects on this host (probed once per process)."""
    reports, _ = detect_accelerators(environ=dict(os.environ))
    return tuple(reports)


def visible_count(report: AcceleratorReport, env: dict[str, str]) -> int:
    """A vendor's devices this process may use: its visible-devices variable narrows the count."""
    value = env.get(report.visible_devices_env)
    if value is None:
        return report.count
    return min(report.count, len([x for x in value.split(",") if x.strip()]))


def on_cpu(stack: StackSpec, accelerators: tuple[AcceleratorReport, ...]) -> bool:
    """The stack computes on this host's CPU (no accelerator, or `engine_args.device: cpu`)."""
    return not accelerators or str(stack.engine_args.get("device", "")).lower() == "cpu"


def device_count(stack: StackSpec, accelerators: tuple[AcceleratorReport, ...] | None = None) -> int:
    """The devices a stack can use on this host: visible accelerators, or 1 on CPU."""
    found = host_accelerators() if accelerators is None else accelerators
    if on_cpu(stack, found):
        return 1
    env = stack.child_env(dict(os.environ))
    return sum(visible_count(r, env) for r in found)


@functools.cache
def _target_accelerators(spec_json: str) -> tuple[AcceleratorReport, ...]:
    """The accelerators a docker or ssh target reports (probed there once per process)."""
    spec = TargetSpec.model_validate_json(spec_json)
    return tuple(probe_target(open_target(spec)).accelerators)


def device_counter(spec: TargetSpec) -> Callable[[StackSpec], int]:
    """Counts a stack's devices on the target: this host's detection, or the target's own probe."""
    if spec.kind == "local":
        return device_count
    found = _target_accelerators(spec.model_dump_json())
    return lambda stack: device_count(stack, found)


def uses_ray(stack: StackSpec) -> bool:
    """vLLM spreads this stack over a Ray cluster (`engine_args.distributed_executor_backend: ray`)."""
    return stack.engine == "vllm" and stack.engine_args.get("distributed_executor_backend") == "ray"


def with_parallel_defaults(
    config: RunConfig, counter: Callable[[StackSpec], int] = device_count
) -> RunConfig:
    """The config with every local vLLM stack's unset TP set to the devices the host has."""
    stacks = {}
    for name, stack in config.stacks.items():
        if stack.engine == "vllm" and stack.tensor_parallel_size is None and not uses_ray(stack):
            stack = stack.model_copy(update={"tensor_parallel_size": max(1, counter(stack))})
        stacks[name] = stack
    return config.model_copy(update={"stacks": stacks})


def ray_cluster_gpus(address: str | None) -> float:
    """The GPUs of the Ray cluster at `address` (None: RAY_ADDRESS or the running local cluster)."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            "distributed_executor_backend: ray needs the ray package",
            where="engine_args.distributed_executor_backend",
            fix="pip install 'stackcert[campaign]' (or ray), and start the cluster (docs/targets.md)",
        ) from None
    if ray.is_initialized():  # inside a campaign task: the campaign's own cluster
        return float(ray.cluster_resources().get("GPU", 0.0))
    try:
        ray.init(address=address or "auto", include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # Ray's own errors vary by version: each is one line here
        raise UsageError(
            f"no Ray cluster reachable at {address or 'RAY_ADDRESS / auto'}: {str(exc).splitlines()[0]}",
            where="engine_args.distributed_executor_backend",
            fix="start it (`ray start --head` on one host, `ray start --address HEAD:6379` on the others) "
            "and set RAY_ADDRESS in the stack's env",
        ) from None
    try:
        return float(ray.cluster_resources().get("GPU", 0.0))
    finally:
        ray.shutdown()


def _requested(stack: StackSpec, default_tp: int) -> tuple[int, str]:
    tp = stack.tensor_parallel_size or default_tp
    pp = stack.pipeline_parallel_size or 1
    text = f"TP={tp}" if pp == 1 else f"TP={tp} × PP={pp} = {tp * pp}"
    return tp * pp, text


def _plural(n: int | float) -> str:
    return f"{n:g} device" + ("" if n == 1 else "s")


def check_devices(
    config: RunConfig,
    *,
    counter: Callable[[StackSpec], int] = device_count,
    cluster_gpus: ClusterGpus = ray_cluster_gpus,
) -> None:
    """A stack asking for more devices than it can have stops here: one line, exit 2."""
    for role in ("reference", "candidate"):
        name = getattr(config, role)
        stack = config.stacks[name]
        if stack.engine != "vllm":
            continue
        where = f"stacks.{name}.tensor_parallel_size"
        if uses_ray(stack):
            address = stack.env.get("RAY_ADDRESS") or os.environ.get("RAY_ADDRESS")
            have = cluster_gpus(address)
            need, text = _requested(stack, 1)
            if need > have:
                raise UsageError(
                    f"requested {text} but only {_plural(have)} in the Ray cluster",
                    where=where,
                    fix="add GPU nodes to the cluster (ray start --address ...), or lower the sizes",
                )
            continue
        have_here = counter(stack)
        need, text = _requested(stack, max(1, have_here))
        if need > have_here:
            raise UsageError(
                f"requested {text} but only {_plural(have_here)}",
                where=where,
                fix="lower tensor_parallel_size / pipeline_parallel_size, or serve across hosts with "
                "engine_args.distributed_executor_backend: ray (docs/targets.md)",
            )
