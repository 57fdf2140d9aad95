"""The measured facts the deliverables show, pulled from report.json (and features.json).

Every value here comes from the run; a value the run did not measure is `NOT_MEASURED`, never a
default that looks like a measurement. The deployed stack is the recommended one; when none is
recommended (FAIL) the candidate's numbers are shown and every document says it is not certified.
"""

from __future__ import annotations

import re
from pathlib import Path
from statistics import mean
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from stackcert.bench.records import BenchResult
from stackcert.config import ModelSpec, StackSpec
from stackcert.env.probe import HostInfo
from stackcert.errors import UsageError
from stackcert.jsonio import read_json
from stackcert.report.render import faq
from stackcert.report.schema import EvalRow, Report

NOT_MEASURED = "not measured"
# Package modules of the environment table (env.json `host.packages` keys) and their labels.
STACK_PACKAGES = (
    ("torch", "PyTorch"),
    ("vllm", "vLLM"),
    ("flag_gems", "FlagGems"),
    ("flagtree", "FlagTree"),
    ("triton", "Triton"),
    ("flagcx", "FlagCX"),
    ("vllm_fl", "vllm-plugin-FL"),
    ("transformers", "transformers"),
)
# Serve arguments written into the vllm-ascend config: the model's, then the stack's engine_args.
_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


class Feature(BaseModel):
    """One line of features.json."""

    feature: str
    outcome: Literal["supported", "unsupported", "not-applicable", "checkpoint-missing"]
    evidence: str = ""


class Serve(BaseModel):
    """How the deployed stack is served: the recorded command and environment."""

    stack: str
    role: str
    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    unset_env: list[str] = Field(default_factory=list)
    served_name: str
    port: int


class AccuracyRow(BaseModel):
    """One task: accuracy on both stacks and the deployed stack's value."""

    task: str
    items: int | None = None
    reference: float | None = None
    candidate: float | None = None
    deployed: float | None = None
    status: str = ""


class PerfRow(BaseModel):
    """One benchmark load point of the deployed stack."""

    profile: str
    point: str
    input_len: str = NOT_MEASURED
    output_len: str = NOT_MEASURED
    runs: int = 0
    output_tps: str = NOT_MEASURED
    request_tps: str = NOT_MEASURED
    ttft_ms: str = NOT_MEASURED
    tpot_ms: str = NOT_MEASURED


class DeliverableData(BaseModel):
    """Everything the templates read; built once from a Report."""

    model: str = Field(..., description="display name, e.g. Qwen3-0.6B")
    file_stem: str = Field(..., description="the model name made safe for a file name")
    model_name: str = Field(..., description="what vllm-ascend's model_name gets: hub ID or path")
    served_name: str
    source: str
    hub: str | None = Field(None, description="huggingface | modelscope when source is hub")
    revision: str | None = None
    dtype: str
    max_model_len: int | None
    status: str
    recommended: str
    certified: bool
    deployed_role: str
    deployed_stack: str
    reference: str
    candidate: str
    run_id: str
    created: str
    conclusion: str
    serve: Serve | None
    chat: bool
    hardware: str
    env: list[tuple[str, str]]
    install_pins: list[str]
    tasks: list[AccuracyRow]
    limit: int | None
    num_fewshot: int | None
    perf: list[PerfRow]
    perf_ratio: str
    serve_args: dict[str, Any]
    features: list[Feature] | None
    faq: list[dict[str, str]]
    evaluation: list[EvalRow]
    reasons: list[str]


def read_features(run_dir: Path) -> list[Feature] | None:
    """features.json of the run (a list, or {"features": [...]}); None when the run has none."""
    path = run_dir / "features.json"
    if not path.is_file():
        return None
    try:
        raw = read_json(path)
        items = raw.get("features") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise ValueError("expected a list of {feature, outcome, evidence}")
        return [Feature.model_validate(item) for item in items]
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(
            f"features.json does not validate: {first}",
            where=str(path),
            fix="a list of {feature, outcome: supported|unsupported|not-applicable|checkpoint-missing, "
            "evidence}",
        ) from None


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return NOT_MEASURED
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def hardware(host: HostInfo | None) -> str:
    """'8 × NVIDIA H100 80GB HBM3', or the CPU when no accelerator was found."""
    if host is None:
        return NOT_MEASURED
    for acc in host.accelerators:
        names = sorted({d.name for d in acc.devices if d.name})
        if names:
            return f"{acc.count or len(acc.devices)} × {', '.join(names)}"
    if host.cpu_model:
        return f"CPU: {host.cpu_model} × {host.cpu_count or '?'}"
    return NOT_MEASURED


def environment(host: HostInfo | None) -> tuple[list[tuple[str, str]], list[str]]:
    """Rows of the environment table, and `dist==version` pins of the measured stack packages."""
    if host is None:
        rows = [(label, NOT_MEASURED) for label in ("Hardware", "Driver", "OS", "Architecture", "Python")]
        return rows + [(label, NOT_MEASURED) for _, label in STACK_PACKAGES], []
    drivers = [f"{a.display or a.vendor} {a.driver_version}" for a in host.accelerators if a.driver_version]
    rows = [
        ("Hardware", hardware(host)),
        ("Driver", ", ".join(drivers) or NOT_MEASURED),
        ("OS", _fmt(host.os_release or host.os)),
        ("Architecture", _fmt(host.arch)),
        ("Python", _fmt(host.python)),
        ("glibc", _fmt(host.glibc)),
    ]
    pins: list[str] = []
    for module, label in STACK_PACKAGES:
        pkg = host.packages.get(module)
        version = pkg.version if pkg is not None else None
        rows.append((label, version if version else ("not installed" if pkg else NOT_MEASURED)))
        if pkg is not None and version and module != "torch":  # torch stays the vendor's build
            pins.append(f"{pkg.distribution or module}=={version}")
    return rows, pins


def _tasks(report: Report, role: str) -> list[AccuracyRow]:
    phase = report.consistency.tasks if report.consistency is not None else None
    rows = []
    for task in phase.tasks if phase is not None else []:
        ref, cand = task.reference_accuracy, task.candidate_accuracy
        rows.append(
            AccuracyRow(
                task=task.task.removeprefix("lm-eval:"),
                items=task.items,
                reference=ref,
                candidate=cand,
                deployed=ref if role == "reference" else cand,
                status=str(task.status),
            )
        )
    return rows


def _perf(bench: BenchResult | None) -> list[PerfRow]:
    if bench is None:
        return []
    lengths: dict[str, tuple[object, object]] = {
        str(p.get("name")): (p.get("input_len"), p.get("output_len")) for p in bench.profiles
    }
    rows = []
    for point in bench.points:
        kept = point.kept()
        if not kept:
            continue

        def avg(values: list[float]) -> str:
            """Mean of a metric over the kept runs."""
            return f"{mean(values):.2f}" if values else NOT_MEASURED

        in_len, out_len = lengths.get(point.profile, (None, None))
        rows.append(
            PerfRow(
                profile=point.profile,
                point=point.point,
                input_len=_fmt(in_len),
                output_len=_fmt(out_len),
                runs=len(kept),
                output_tps=avg([m.output_throughput for m in kept]),
                request_tps=avg([m.request_throughput for m in kept]),
                ttft_ms=avg([m.ttft_ms.median for m in kept]),
                tpot_ms=avg([m.tpot_ms.median for m in kept]),
            )
        )
    return rows


def _serve_args(model: ModelSpec | None, spec: StackSpec | None) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if model is not None:
        for key in ("dtype", "max_model_len", "trust_remote_code"):
            value = getattr(model, key)
            if value is not None and value is not False:  # a switch that is off is not an argument
                args[key] = value
    for key, value in (spec.launch_args() if spec is not None else {}).items():
        if isinstance(value, str | int | float | bool):
            args[key] = value
    return args


def display_name(report: Report) -> tuple[str, str]:
    """(model name or hub ID, its last part) — 'Qwen/Qwen3-0.6B' → 'Qwen3-0.6B'."""
    model_id = report.config.model.id if report.config is not None else None
    full = str(model_id or report.model.name or Path(report.model.path or "model").name)
    return full, full.rstrip("/").rsplit("/", 1)[-1] or "model"


def collect(report: Report, run_dir: Path) -> DeliverableData:
    """The deliverables' view of a report: measured values only."""
    full, short = display_name(report)
    certified = report.verdict.recommended in ("full", "base") and bool(report.serve.command)
    role = "reference" if report.verdict.recommended == "base" else "candidate"
    deployed = report.serve.stack or (report.reference if role == "reference" else report.candidate)
    stack = report.stacks.get(deployed)
    serve = None
    if report.serve.command:
        serve = Serve(
            stack=deployed,
            role=role,
            argv=[str(a) for a in report.serve.command],
            env=dict(report.serve.env),
            unset_env=list(report.serve.unset_env),
            served_name=report.serve.served_name or report.model.name,
            port=report.serve.port,
        )
    host = report.env
    env_rows, pins = environment(host)
    tasks = _tasks(report, role)
    opts = report.config.phases.consistency.options if report.config is not None else None
    limited = opts is not None and (opts.task_limit is not None or opts.lmeval_limit is not None)
    ratio = report.compare.perf_ratio if report.compare is not None else None
    model_spec = report.config.model if report.config is not None else None
    return DeliverableData(
        model=short,
        file_stem=_SAFE_STEM.sub("-", short).strip(".-") or "model",
        model_name=str((model_spec.id if model_spec else None) or report.model.path or full),
        served_name=serve.served_name if serve else (report.serve.served_name or report.model.name),
        source=report.model.source,
        hub=model_spec.hub if model_spec is not None and report.model.source == "hub" else None,
        revision=model_spec.revision if model_spec is not None else None,
        dtype=report.model.dtype or NOT_MEASURED,
        max_model_len=report.model.max_model_len,
        status=report.status,
        recommended=report.verdict.recommended,
        certified=certified,
        deployed_role=role,
        deployed_stack=deployed,
        reference=report.reference,
        candidate=report.candidate,
        run_id=report.run_id,
        created=report.created,
        conclusion=report.conclusion,
        serve=serve,
        chat=report.model_ref is not None and report.model_ref.has_chat_template,
        hardware=hardware(host),
        env=env_rows,
        install_pins=pins,
        tasks=tasks,
        limit=max((t.items or 0) for t in tasks) if limited and tasks else None,
        num_fewshot=None,  # the built-in tasks are zero-shot; lm-eval tasks keep their own
        perf=_perf(stack.bench if stack else None),
        perf_ratio=_fmt(ratio),
        serve_args=_serve_args(model_spec, stack.spec if stack else None),
        features=read_features(run_dir),
        faq=faq(report),
        evaluation=list(report.evaluation),
        reasons=list(report.verdict.reasons),
    )
