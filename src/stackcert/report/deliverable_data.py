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


def _host(report: Report) -> dict[str, Any]:
    env = report.env or {}
    host = env.get("host")
    return host if isinstance(host, dict) else env


def hardware(host: dict[str, Any]) -> str:
    """'8 × NVIDIA H100 80GB HBM3', or the CPU when no accelerator was found."""
    for acc in host.get("accelerators") or []:
        names = sorted({str(d.get("name")) for d in acc.get("devices") or [] if d.get("name")})
        if names:
            return f"{acc.get('count') or len(acc.get('devices') or [])} × {', '.join(names)}"
    if host.get("cpu_model"):
        return f"CPU: {host['cpu_model']} × {host.get('cpu_count') or '?'}"
    return NOT_MEASURED


def _package(host: dict[str, Any], module: str) -> dict[str, Any]:
    pkg = (host.get("packages") or {}).get(module)
    return pkg if isinstance(pkg, dict) else {}


def environment(host: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """Rows of the environment table, and `dist==version` pins of the measured stack packages."""
    drivers = [
        f"{a.get('display') or a.get('vendor')} {a.get('driver_version')}"
        for a in host.get("accelerators") or []
        if a.get("driver_version")
    ]
    rows = [
        ("Hardware", hardware(host)),
        ("Driver", ", ".join(drivers) or NOT_MEASURED),
        ("OS", _fmt(host.get("os_release") or host.get("os"))),
        ("Architecture", _fmt(host.get("arch"))),
        ("Python", _fmt(host.get("python"))),
        ("glibc", _fmt(host.get("glibc"))),
    ]
    pins: list[str] = []
    for module, label in STACK_PACKAGES:
        pkg = _package(host, module)
        version = pkg.get("version")
        rows.append((label, str(version) if version else ("not installed" if pkg else NOT_MEASURED)))
        if version and module != "torch":  # torch stays the vendor's build (docs/install.md)
            pins.append(f"{pkg.get('distribution') or module}=={version}")
    return rows, pins


def _tasks(report: Report, role: str) -> list[AccuracyRow]:
    rows = []
    for task in ((report.consistency or {}).get("tasks") or {}).get("tasks") or []:
        if not isinstance(task, dict) or "reference_accuracy" not in task:
            continue
        ref, cand = task.get("reference_accuracy"), task.get("candidate_accuracy")
        rows.append(
            AccuracyRow(
                task=str(task.get("task", "")).removeprefix("lm-eval:"),
                items=task.get("items"),
                reference=ref,
                candidate=cand,
                deployed=ref if role == "reference" else cand,
                status=str(task.get("status", "")),
            )
        )
    return rows


def _options(report: Report) -> dict[str, Any]:
    phases = report.config.get("phases") or {}
    return ((phases.get("consistency") or {}).get("options")) or {}


def _perf(bench: dict[str, Any] | None) -> list[PerfRow]:
    bench = bench or {}
    lengths = {
        str(p.get("name")): (p.get("input_len"), p.get("output_len"))
        for p in bench.get("profiles") or []
        if isinstance(p, dict)
    }
    rows = []
    for point in bench.get("points") or []:
        kept = [r.get("metrics") or {} for r in point.get("runs") or [] if not r.get("discarded")]
        if not kept:
            continue

        def avg(key: str, sub: str | None = None, kept: list[dict[str, Any]] = kept) -> str:
            """Mean of a metric (or of a statistic of it) over the kept runs."""
            vals = [(m.get(key) or {}).get(sub) if sub else m.get(key) for m in kept]
            nums = [float(v) for v in vals if isinstance(v, int | float)]
            return f"{mean(nums):.2f}" if nums else NOT_MEASURED

        profile = str(point.get("profile", ""))
        in_len, out_len = lengths.get(profile, (None, None))
        rows.append(
            PerfRow(
                profile=profile,
                point=str(point.get("point", "")),
                input_len=_fmt(in_len),
                output_len=_fmt(out_len),
                runs=len(kept),
                output_tps=avg("output_throughput"),
                request_tps=avg("request_throughput"),
                ttft_ms=avg("ttft_ms", "median"),
                tpot_ms=avg("tpot_ms", "median"),
            )
        )
    return rows


def _serve_args(report: Report, spec: dict[str, Any]) -> dict[str, Any]:
    model = report.config.get("model") or {}
    args: dict[str, Any] = {}
    for key in ("dtype", "max_model_len", "trust_remote_code"):
        if model.get(key) is not None:
            args[key] = model[key]
    for key, value in (spec.get("engine_args") or {}).items():
        if isinstance(value, str | int | float | bool):
            args[key] = value
    return args


def display_name(report: Report) -> tuple[str, str]:
    """(model name or hub ID, its last part) — 'Qwen/Qwen3-0.6B' → 'Qwen3-0.6B'."""
    model = report.config.get("model") or {}
    full = str(model.get("id") or report.model.name or Path(report.model.path or "model").name)
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
    host = _host(report)
    env_rows, pins = environment(host)
    tasks = _tasks(report, role)
    opts = _options(report)
    limited = opts.get("task_limit") is not None or opts.get("lmeval_limit") is not None
    ratio = (report.compare or {}).get("perf_ratio")
    model_ref = report.model_ref or {}
    return DeliverableData(
        model=short,
        file_stem=_SAFE_STEM.sub("-", short).strip(".-") or "model",
        model_name=str((report.config.get("model") or {}).get("id") or report.model.path or full),
        served_name=serve.served_name if serve else (report.serve.served_name or report.model.name),
        source=report.model.source,
        hub=(report.config.get("model") or {}).get("hub") if report.model.source == "hub" else None,
        revision=(report.config.get("model") or {}).get("revision"),
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
        chat=bool(model_ref.get("has_chat_template")),
        hardware=hardware(host),
        env=env_rows,
        install_pins=pins,
        tasks=tasks,
        limit=max((t.items or 0) for t in tasks) if limited and tasks else None,
        num_fewshot=opts.get("num_fewshot") if isinstance(opts.get("num_fewshot"), int) else None,
        perf=_perf(stack.bench if stack else None),
        perf_ratio=_fmt(ratio),
        serve_args=_serve_args(report, stack.spec if stack else {}),
        features=read_features(run_dir),
        faq=faq(report),
        evaluation=list(report.evaluation),
        reasons=list(report.verdict.reasons),
    )
