"""Render report.json into report.md (a model card) and report.html (one self-contained file).

Templates ship inside the package (`report/templates`). The HTML environment autoescapes every
value; only the SVG plots built in `plots.py` (which escape their own text) are marked safe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from pydantic import ValidationError

from stackcert.errors import UsageError
from stackcert.jsonio import read_json
from stackcert.report import plots, safe
from stackcert.report.schema import Report
from stackcert.secrets import redact

_FAQ_FIX = {
    "L0": "check the host, driver and device (stackcert env).",
    "L1": "check the packages and imports (stackcert install --gate).",
    "L2": "check the model files and config (stackcert model info).",
    "L3": "an operator or kernel: run the bisection, or exclude the operator (operators.exclude).",
    "L4": "check the communication library (FlagCX / NCCL) settings.",
    "L5": "check the server log named in the finding.",
    "L6": "numerics differ: see the consistency section and the bisection result.",
}


def _env(autoescape: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("stackcert.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]) if autoescape else False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=safe.finalize,  # every value: no control characters, long ones cut
    )
    env.filters["shjoin"] = safe.shjoin
    env.filters["dur"] = _dur
    env.filters["mdcell"] = safe.md
    env.filters["mdcode"] = safe.mdcode
    env.filters["shquote"] = safe.shquote
    env.globals["env_rows"] = env_rows
    env.globals["serve_env"] = safe.serve_env
    env.globals["curl_body"] = _curl_body
    return env


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def _curl_body(report: Report) -> str:
    """The JSON body of the API example, as one shell word (a quote in a name cannot break it)."""
    body = {
        "model": report.serve.served_name or report.model.name,
        "prompt": "Question: What is 12+7?\nAnswer:",
        "max_tokens": 16,
        "temperature": 0,
    }
    return safe.shquote(json.dumps(body))


_SKIP = {"schema_version", "kind", "stackcert_version", "started", "finished", "command"}


def env_rows(report: Report, limit: int = 40) -> list[tuple[str, str]]:
    """Flatten the probed environment (two levels deep) into table rows."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any, depth: int) -> None:
        if len(rows) >= limit:
            return
        if isinstance(value, dict) and "version" in value and "module" in value:  # a probed package
            rows.append((prefix, _package_cell(value)))
        elif isinstance(value, dict) and depth < 2:
            for k, v in value.items():
                if depth == 0 and k in _SKIP:
                    continue
                walk(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)
        elif isinstance(value, list) and value and all(not isinstance(x, dict | list) for x in value):
            rows.append((prefix, ", ".join(str(x) for x in value)))
        elif isinstance(value, dict | list):
            rows.append((prefix, f"{len(value)} entries"))
        elif value is not None and value != "":
            rows.append((prefix, str(value)))

    if report.target is not None:
        t = report.target
        rows.append(("target", f"{t.kind}: {t.name} (Python {t.python}, servers on {t.bind_host})"))
        rows += [(f"target.{k}", v) for k, v in t.detail.items() if v]
    walk("", report.env.model_dump(mode="json") if report.env is not None else {}, 0)
    return rows


def _package_cell(pkg: dict[str, Any]) -> str:
    if not pkg.get("version"):
        return "not installed"
    cell = str(pkg["version"])
    if pkg.get("distribution") and pkg["distribution"] != pkg.get("module"):
        cell += f" ({pkg['distribution']})"
    return cell + (f" — {pkg['note']}" if pkg.get("note") else "")


def faq(report: Report) -> list[dict[str, str]]:
    """Questions and answers built from the findings (one per distinct signature)."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for f in report.findings:
        key = f.signature or f.message
        if key in seen:
            continue
        seen.add(key)
        where = "/".join(p for p in (f.step, f.phase) if p)
        question = f"What does '{f.category}' in {where} mean?"
        answer = (
            f"{f.message} — layer {f.layer.value}, component {f.component.value}"
            + (f", operator {f.operator}" if f.operator else "")
            + f". Next: {_FAQ_FIX.get(f.layer.value, 'see the log excerpt.')}"
        )
        out.append({"q": question, "a": answer, "severity": f.severity.value})
    if report.verdict.retest:
        out.append(
            {
                "q": "Why is a retest advised?",
                "a": (
                    "The consistency sample was too small to decide against the tolerance (the "
                    "finding says how many more texts or items would): rerun with larger sizes."
                ),
                "severity": "info",
            }
        )
    return out


def _plots(report: Report) -> dict[str, Markup]:
    s = report.series
    lat, thr, kl = s.latency, s.throughput, s.kl
    per_token = s.kl_axis == "token"
    return {
        "latency": Markup(
            plots.histogram(
                {k: [float(v) for v in vs] for k, vs in lat.items()},
                title="Request latency (E2EL)",
                xlabel="milliseconds",
            )
        ),
        "throughput": Markup(
            plots.line_plot(
                {k: [(float(a), float(b)) for a, b in pts] for k, pts in thr.items()},
                title="Output throughput vs concurrency",
                xlabel="concurrency",
                ylabel="output tokens/s",
            )
        ),
        "kl": Markup(
            plots.line_plot(
                {"KL(reference ‖ candidate)": [(float(a), float(b)) for a, b in kl]} if kl else {},
                title="KL divergence, reference vs candidate"
                + (" (per token)" if per_token else " (mean per text)"),
                xlabel="token position" if per_token else "scored text",
                ylabel="KL (nats)",
            )
        ),
    }


def render_markdown(report: Report) -> str:
    return _env(False).get_template("report.md.j2").render(r=report, faq=faq(report))


def render_html(report: Report) -> str:
    return _env(True).get_template("report.html.j2").render(r=report, faq=faq(report), plots=_plots(report))


def write_reports(report: Report, run_dir: Path) -> dict[str, Path]:
    """Write report.md and report.html next to report.json (atomically, via a temp name)."""
    report = Report.model_validate(redact(report.model_dump(mode="json")))  # as report.json holds it
    out: dict[str, Path] = {}
    for name, text in (("report.md", render_markdown(report)), ("report.html", render_html(report))):
        path = run_dir / name
        tmp = run_dir / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        with os.fdopen(
            os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
        ) as fh:
            fh.write(text)  # 0600: the report quotes model output and the serving environment
        tmp.replace(path)
        out[name] = path
    return out


def load_report(run_dir: Path) -> Report:
    """The Report of a run folder (or a report.json path); a missing or damaged file is a UsageError."""
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    fix = "give the folder of a finished run, or re-create the report with: stackcert run --resume RUN_DIR"
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise UsageError(f"report.json {what}: {path}", where=str(path), fix=fix)
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"report.json is not readable JSON: {exc}", where=str(path), fix=fix) from None
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(x) for x in first["loc"]) or "<top>"
        raise UsageError(
            f"report.json does not match this stackcert version: {key}: {first['msg']} "
            f"({exc.error_count()} problem(s))",
            where=str(path),
            fix=fix,
        ) from None
