"""Deliverables of a run, from measured results only: `<run>/deliverables/`.

* `<Model>.yaml` — an accuracy test config in vllm-ascend's e2e schema
  (tests/e2e/models/configs/*.yaml, read by tests/e2e/models/test_lm_eval_correctness.py);
* `<Model>.md` — the tutorial (Introduction … Performance);
* `runbook.md` — start, check, stop;
* `model_card.md` — the card in the shape of a released FlagOS model card.

The pipeline calls `write_deliverables(report, run_dir)` once report.json exists; `stackcert
deliverables RUN_DIR` does the same from the saved file. Names from the config reach shell
commands only through `shlex.quote` and JSON bodies only through `json.dumps`.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from stackcert.report.deliverable_data import NOT_MEASURED, DeliverableData, collect
from stackcert.report.schema import Report

ASCEND_SOURCE = (
    "vllm-project/vllm-ascend tests/e2e/models/configs/*.yaml (e.g. Qwen3-8B.yaml), read by "
    "tests/e2e/models/test_lm_eval_correctness.py"
)
PROMPT = "Question: What is 12+7?\nAnswer:"
CHAT_PROMPT = "What is 12+7? Answer with the number only."


def _md(value: Any) -> str:
    """Text that is safe in Markdown prose and table cells (names from a config can hold |, <, `)."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("\n", " ")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _code(value: Any) -> str:
    """Text for inside an inline code span: no backticks or newlines can close it."""
    return str(value).replace("`", "'").replace("\n", " ")


def base_url(data: DeliverableData) -> str:
    """Where the served model answers: the serve command's host (a wildcard bind means localhost)."""
    host = "127.0.0.1"
    if data.serve and "--host" in data.serve.argv:
        i = data.serve.argv.index("--host")
        if i + 1 < len(data.serve.argv) and data.serve.argv[i + 1] not in ("0.0.0.0", "::", ""):
            host = data.serve.argv[i + 1]
    return f"http://{host}:{data.serve.port if data.serve else 8000}"


def request_body(data: DeliverableData) -> dict[str, Any]:
    """The functional check's request: chat when the model has a chat template, else completions."""
    if data.chat:
        message = {"role": "user", "content": CHAT_PROMPT}
        return {"model": data.served_name, "messages": [message], "max_tokens": 16, "temperature": 0}
    return {"model": data.served_name, "prompt": PROMPT, "max_tokens": 16, "temperature": 0}


def curl_argv(data: DeliverableData) -> list[str]:
    """The tutorial's curl command as an argument list (what the shell sees after quoting)."""
    path = "/v1/chat/completions" if data.chat else "/v1/completions"
    body = json.dumps(request_body(data), ensure_ascii=False)
    return ["curl", "-sS", base_url(data) + path, "-H", "Content-Type: application/json", "-d", body]


def curl_command(data: DeliverableData) -> str:
    """The curl command for a shell, one option per line."""
    argv = [shlex.quote(a) for a in curl_argv(data)]
    return f"{argv[0]} {argv[1]} {argv[2]} \\\n  {argv[3]} {argv[4]} \\\n  {argv[5]} {argv[6]}"


def weights_command(data: DeliverableData) -> str | None:
    """How to get the weights: the hub's own download command, or stackcert's for the demo."""
    if data.source == "demo":
        return "stackcert model prepare demo"
    if data.source != "hub":
        return None
    if data.hub == "modelscope":
        argv = ["modelscope", "download", "--model", data.model_name]
    else:
        argv = ["hf", "download", data.model_name]
    if data.revision:
        argv += ["--revision", data.revision]
    return shlex.join(argv)


def serve_lines(data: DeliverableData) -> list[str]:
    """unset / export lines, then the serve command, all shell-quoted."""
    if data.serve is None:
        return []
    lines = [f"unset {shlex.quote(k)}" for k in data.serve.unset_env]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in data.serve.env.items() if k.isidentifier()]
    lines.append(shlex.join(data.serve.argv))
    return lines


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("stackcert.report", "templates/deliverables"),
        autoescape=False,  # Markdown, not HTML: values are escaped with the md/code filters
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md
    env.filters["code"] = _code
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    env.filters["pystr"] = lambda v: json.dumps(str(v), ensure_ascii=True)  # a valid Python literal
    env.filters["num"] = lambda v, d=3: NOT_MEASURED if v is None else f"{float(v):.{d}f}"
    return env


def ascend_config(data: DeliverableData) -> dict[str, Any]:
    """The vllm-ascend accuracy config: the deployed stack's measured accuracy per task."""
    config: dict[str, Any] = {
        "model_name": data.model_name,
        "model_type": "vllm",
        "hardware": data.hardware,
        "serve": data.serve_args,
        "tasks": [
            {"name": t.task, "metrics": [{"name": "accuracy", "value": round(float(t.deployed), 4)}]}
            for t in data.tasks
            if t.deployed is not None
        ],
        # stackcert scores its tasks through /v1/completions with raw prompts: no chat template.
        "apply_chat_template": False,
        "fewshot_as_multiturn": False,
    }
    if data.num_fewshot is not None:
        config["num_fewshot"] = data.num_fewshot
    if data.limit is not None:
        config["limit"] = data.limit
    return config


def render_test_config(data: DeliverableData) -> str:
    """The YAML text: provenance comments, then the config."""

    def comment(text: str) -> str:
        """One comment line, whatever newlines the text holds."""
        return "# " + " ".join(text.split())

    head = [
        comment(f"Accuracy test config for {data.model_name} in vllm-ascend's e2e schema ({ASCEND_SOURCE})."),
        comment(
            f"Generated by stackcert from run {data.run_id}: values measured on stack "
            f"'{data.deployed_stack}' ({data.deployed_role}), verdict {data.status}."
        ),
    ]
    if not data.certified:
        head.append(comment("NOT CERTIFIED: no stack passed its gates; these are the candidate's numbers."))
    if not data.tasks:
        head.append(comment("No accuracy task was measured in this run: tasks is empty."))
    body = yaml.safe_dump(ascend_config(data), sort_keys=False, allow_unicode=True)
    return "\n".join(head) + "\n" + body


def render_documents(data: DeliverableData) -> dict[str, str]:
    """File name → text of every deliverable."""
    env = _env()
    context = {
        "d": data,
        "NM": NOT_MEASURED,
        "curl": curl_command(data),
        "serve_lines": serve_lines(data),
        "weights": weights_command(data),
        "base_url": base_url(data),
        "request": request_body(data),
        "config_file": f"{data.file_stem}.yaml",
        "ascend_source": ASCEND_SOURCE,
    }
    return {
        f"{data.file_stem}.yaml": render_test_config(data),
        f"{data.file_stem}.md": env.get_template("tutorial.md.j2").render(**context),
        "runbook.md": env.get_template("runbook.md.j2").render(**context),
        "model_card.md": env.get_template("model_card.md.j2").render(**context),
    }


def write_deliverables(report: Report, run_dir: Path) -> list[Path]:
    """Write the deliverables into `<run_dir>/deliverables/` (atomically each); return their paths."""
    data = collect(report, run_dir)
    out_dir = run_dir / "deliverables"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_documents(data).items():
        path = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
