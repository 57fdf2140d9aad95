"""Bridge to lm-eval: run a task on both servers with `local-completions`, compare item by item.

lm-eval runs as a child process (`python -m lm_eval run`) fully offline (HF_*_OFFLINE=1) against
the stack's `/v1/completions`, with the model's local tokenizer. Per-item correctness comes from its
`--log_samples` files (doc_id → acc / exact_match), so the paired statistics work as for local tasks.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackcert.consistency.tasks import TaskComparison, compare_paired
from stackcert.engines.base import ModelRef
from stackcert.engines.process import run_command
from stackcert.errors import EngineError, UsageError
from stackcert.secrets import key_for

if TYPE_CHECKING:
    from stackcert.consistency.options import ConsistencyOptions

METRICS = ("acc", "exact_match", "em")
SHIPPED = "stackcert_arith_mc"


def shipped_include_path(dest: Path) -> Path:
    """Write the shipped task YAML(s) into `dest` with absolute data paths; return `dest`."""
    src = resources.files("stackcert.consistency") / "data" / "lmeval"
    dest.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name.endswith(".yaml"):
            data = Path(str(src / entry.name.replace(".yaml", ".jsonl")))
            (dest / entry.name).write_text(entry.read_text().replace("__DATA__", str(data)), encoding="utf-8")
    return dest


def lmeval_argv(
    *,
    completions_url: str,
    served_model: str,
    tokenizer: Path,
    task: str,
    include_path: Path | None,
    output_path: Path,
    limit: int | None = None,
    num_concurrent: int = 8,
) -> list[str]:
    """The `lm_eval run` command line for a stack's server (local-completions, HF tokenizer, BOS)."""
    model_args = ",".join(
        [
            f"model={served_model}",
            f"base_url={completions_url}",
            f"tokenizer={tokenizer}",
            "tokenizer_backend=huggingface",
            "add_bos_token=True",
            f"num_concurrent={num_concurrent}",
            "max_retries=1",
        ]
    )
    argv = [
        sys.executable,
        "-m",
        "lm_eval",
        "run",
        "--model",
        "local-completions",
        "--model_args",
        model_args,
    ]
    argv += ["--tasks", task, "--output_path", str(output_path), "--log_samples"]
    if include_path is not None:
        argv += ["--include_path", str(include_path)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    return argv


def offline_env() -> dict[str, str]:
    """This process's environment with Hugging Face datasets, hub and transformers set offline."""
    env = dict(os.environ)
    env.update({"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    return env


def read_samples(output_path: Path, task: str) -> dict[int, bool]:
    """doc_id → correct, from lm-eval's samples_<task>_*.jsonl (newest file)."""
    files = sorted(output_path.rglob(f"samples_{task}_*.jsonl"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise EngineError(f"lm-eval wrote no samples for task '{task}'", where=str(output_path))
    out: dict[int, bool] = {}
    for line in files[-1].read_text(encoding="utf-8").splitlines():
        row: dict[str, Any] = json.loads(line)
        metric = next((m for m in METRICS if m in row), None)
        if metric is None:
            raise EngineError(f"lm-eval samples carry none of {METRICS}", where=str(files[-1]))
        out[int(row["doc_id"])] = float(row[metric]) > 0.5
    return out


def run_lmeval(
    completions_url: str, served_model: str, model: ModelRef, task: str, opts: ConsistencyOptions, out: Path
) -> dict[int, bool]:
    """Run an lm-eval task against one completions server, offline; doc_id → correct from its samples."""
    include = opts.lmeval_include_path
    if include is None and task == SHIPPED:
        include = shipped_include_path(out / "tasks")
    argv = lmeval_argv(
        completions_url=completions_url,
        served_model=served_model,
        tokenizer=model.tokenizer,
        task=task,
        include_path=include,
        output_path=out,
        limit=opts.lmeval_limit,
        num_concurrent=opts.concurrency,
    )
    log = out / "lm_eval.log"
    env = offline_env()
    key = key_for(completions_url)
    if key:  # lm-eval's local-completions sends OPENAI_API_KEY as its Bearer token
        env["OPENAI_API_KEY"] = key
    done = run_command(argv, timeout=opts.timeout_s, log_path=log, env=env)
    if done.timed_out or done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-3:] if log.exists() else []
        raise EngineError(
            f"lm-eval failed on task '{task}' (exit {done.returncode}): {' | '.join(tail)[-300:]}",
            where=str(log),
            fix="check the task name / --include_path and that the data files are local",
        )
    return read_samples(out, task)


def compare_lmeval_task(
    sides: Any, model: ModelRef, task: str, opts: ConsistencyOptions, out: Path
) -> TaskComparison:
    """Run `task` via lm-eval on both sides (the _Sides of the pipeline) and compare item by item."""
    ref = run_lmeval(sides.ref.url, sides.ref.model, model, task, opts, out / "reference")
    cand = run_lmeval(sides.cand.url, sides.cand.model, model, task, opts, out / "candidate")
    ids = sorted(set(ref) & set(cand))
    if not ids:
        raise UsageError(f"lm-eval task '{task}' produced no common items", fix="check the task data")
    return compare_paired(
        f"lm-eval:{task}",
        "lm-eval",
        [str(i) for i in ids],
        [ref[i] for i in ids],
        [cand[i] for i in ids],
        opts.rules,
    )
