"""`stackcert consistency`: greedy tokens, teacher-forced log-probs and paired task accuracy, A vs B."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stackcert.cli.app import JsonFlag, app, console, emit
from stackcert.cli.smoke_cmd import cli_progress, default_run_dir, resolve_cli_model, status_text
from stackcert.config import load_preset
from stackcert.consistency import ConsistencyOptions, run_consistency
from stackcert.consistency.remote import UrlServer
from stackcert.engines.base import ModelRef, Server
from stackcert.errors import ExitCode, UsageError

EXIT = {"pass": ExitCode.PASS, "fail": ExitCode.FAIL, "retest": ExitCode.RETEST}
PHASES = ("tokens", "logprobs", "tasks")

Opt = typer.Option


@contextmanager
def _servers(
    preset_name: str,
    reference: str | None,
    candidate: str | None,
    model_path: Path | None,
    urls: tuple[str | None, str | None],
    served: str | None,
    run_dir: Path,
) -> Iterator[tuple[Server, Server, ModelRef]]:
    preset = load_preset(preset_name)
    ref_name, cand_name = reference or preset.reference, candidate or preset.candidate
    if urls[0] and urls[1]:
        if model_path is None:
            raise UsageError("--reference-url needs --model (the tokenizer folder)", fix="add --model PATH")
        model = ModelRef(path=model_path, tokenizer=model_path, served_name=served or model_path.name)
        name = served or model.served_name
        yield UrlServer(ref_name, urls[0], name), UrlServer(cand_name, urls[1], name), model
        return
    if urls[0] or urls[1]:
        raise UsageError("give both --reference-url and --candidate-url, or neither")
    from stackcert.engines import launch_server

    model = resolve_cli_model(preset, model_path)
    ref_stack, cand_stack = preset.stack(ref_name), preset.stack(cand_name)
    with ExitStack() as stack:
        # Both up at once: each vLLM-CPU instance takes gpu_memory_utilization 0.3, two fit in memory.
        # Started one after the other (halves the peak CPU load), then both stay up for the comparison.
        ref = stack.enter_context(launch_server(ref_stack, model, run_dir=run_dir / "stacks" / ref_name))
        cand = stack.enter_context(launch_server(cand_stack, model, run_dir=run_dir / "stacks" / cand_name))
        yield ref, cand, model


@app.command("consistency")
def consistency(
    reference: Annotated[
        str | None, Opt("--reference", help="Reference stack (default: the preset's).")
    ] = None,
    candidate: Annotated[
        str | None, Opt("--candidate", help="Candidate stack (default: the preset's).")
    ] = None,
    preset: Annotated[str, Opt("--preset", help="Preset holding the stacks and the model.")] = "demo",
    model_path: Annotated[
        Path | None, Opt("--model", help="HF checkpoint folder instead of the preset's.")
    ] = None,
    prompts: Annotated[Path | None, Opt("--prompts", help='JSONL of {"prompt": ...} lines.')] = None,
    task: Annotated[
        list[str] | None, Opt("--task", help="Built-in task name or JSONL file (repeatable).")
    ] = None,
    lmeval_task: Annotated[
        list[str] | None, Opt("--lmeval-task", help="lm-eval task name (repeatable).")
    ] = None,
    lmeval_include: Annotated[
        Path | None, Opt("--lmeval-include", help="Folder of lm-eval task YAMLs.")
    ] = None,
    lmeval_limit: Annotated[int | None, Opt("--lmeval-limit", help="Items per lm-eval task.", min=1)] = None,
    phase: Annotated[list[str] | None, Opt("--phase", help="tokens | logprobs | tasks (repeatable).")] = None,
    max_tokens: Annotated[int, Opt("--max-tokens", help="Greedy tokens per prompt.", min=1)] = 64,
    top_k: Annotated[int, Opt("--top-k", help="Top-k for the divergence rule.", min=1)] = 5,
    tie_margin: Annotated[
        float,
        Opt("--tie-margin", help="Fallback rule (no cross-scoring): near ties within this many nats.", min=0),
    ] = 0.125,
    score_top_k: Annotated[int, Opt("--score-top-k", help="Top-k log-probs per scored token.", min=1)] = 10,
    sharegpt: Annotated[
        int, Opt("--sharegpt", help="ShareGPT conversations to score (0 = none).", min=0)
    ] = 8,
    token_budget: Annotated[int, Opt("--token-budget", help="Tokens per scored text.", min=1)] = 256,
    max_texts: Annotated[
        int, Opt("--max-texts", help="ShareGPT texts scored at most while a check is inconclusive.", min=1)
    ] = 32,
    margin: Annotated[float, Opt("--margin", help="Limits ≥ this × the equivalence envelope.", min=0)] = 1.5,
    noise_multiple: Annotated[float, Opt("--noise-multiple", help="Limits ≥ this × the noise.", min=0)] = 3.0,
    max_kl: Annotated[float | None, Opt("--max-kl", help="Fixed mean-KL limit (ignores the floor).")] = None,
    task_limit: Annotated[
        int, Opt("--task-limit", help="Start with the first N items of each task.", min=1)
    ] = 100,
    task_budget: Annotated[
        int, Opt("--task-budget", help="Items at most per task while inconclusive.", min=1)
    ] = 400,
    concurrency: Annotated[int, Opt("--concurrency", help="Requests in flight per server.", min=1)] = 8,
    reference_url: Annotated[str | None, Opt("--reference-url", help="Use a running server.")] = None,
    candidate_url: Annotated[str | None, Opt("--candidate-url", help="Use a running server.")] = None,
    served_model: Annotated[str | None, Opt("--served-model", help="Model name the URLs serve.")] = None,
    run_dir: Annotated[Path | None, Opt("--run-dir", help="Where results go.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Compare a candidate stack with the reference: tokens, log-probs, task accuracy (exit 4 = retest)."""
    for p in phase or []:
        if p not in PHASES:
            raise UsageError(f"unknown phase '{p}'", where="--phase", fix=f"use one of {', '.join(PHASES)}")
    opts = ConsistencyOptions(
        phases=list(phase or PHASES),
        prompts_file=prompts,
        score_top_k=score_top_k,
        sharegpt_texts=sharegpt,
        token_budget=token_budget,
        max_sharegpt_texts=max_texts,
        task_limit=task_limit,
        task_budget=task_budget,
        lmeval_tasks=list(lmeval_task or []),
        lmeval_include_path=lmeval_include,
        lmeval_limit=lmeval_limit,
        concurrency=concurrency,
    )
    opts.tokens.max_tokens, opts.tokens.top_k, opts.tokens.tie_margin = max_tokens, top_k, tie_margin
    opts.tolerance.margin, opts.tolerance.noise_multiple = margin, noise_multiple
    opts.tolerance.fixed_mean_kl = max_kl
    if task:
        opts.tasks = list(task)
    _validate_inputs(opts)
    out = run_dir or default_run_dir("consistency")
    urls = (reference_url, candidate_url)
    with (
        _servers(preset, reference, candidate, model_path, urls, served_model, out) as (
            ref,
            cand,
            model,
        ),
        cli_progress(json_out) as progress,
    ):
        result = run_consistency(
            ref, cand, model, options=opts, out_dir=out / "consistency", progress=progress
        )
    data = {"run_dir": str(out), **result.model_dump(mode="json")}
    emit(data, as_json=json_out, render=render)
    raise typer.Exit(int(EXIT[result.status]))


def _validate_inputs(opts: ConsistencyOptions) -> None:
    """Read prompt and task files before any engine starts, so bad input costs nothing."""
    from stackcert.consistency.tasks import load_task
    from stackcert.consistency.texts import load_prompt_file

    if opts.prompts_file is not None:
        load_prompt_file(opts.prompts_file)
    if "tasks" in opts.phases:
        for name in opts.tasks:
            load_task(name, limit=opts.task_limit)


def render(data: dict[str, Any]) -> None:
    table = Table(title=f"consistency: {data['reference']} vs {data['candidate']}")
    for column in ("phase", "status", "detail"):
        table.add_column(column, overflow="fold")
    tok = data.get("tokens")
    if tok and tok.get("summary"):
        s = tok["summary"]
        detail = (
            f"{s['prompts']} prompts: {s['identical']} identical, {s['diverged_ok']} diverged as near ties "
            f"({s.get('cross_scored', 0)} cross-scored), "
            f"{s['failed']} failed; flags {s['flags'] or '-'}"
        )
        table.add_row("tokens", status_text(tok["status"]), detail)
    lp = data.get("logprobs")
    if lp and lp.get("comparison"):
        c = lp["comparison"]
        checks = ", ".join(
            f"{k['metric']} {k['value']:.3g} (≤ {k['ci_high']:.3g}) vs {k['limit']:.3g}: {k['decision']}"
            for k in lp["checks"]
        )
        detail = (
            f"{c['tokens']} tokens, mean KL {c['mean_kl']:.2e}, top-1 {c['top1_agreement'] * 100:.1f} %, "
            f"|Δlp| p99 {c['dlogprob_p99']:.3f} max {c['dlogprob_max']:.3f}; {checks}"
        )
        table.add_row("logprobs", status_text(lp["status"]), detail)
    for t in (data.get("tasks") or {}).get("tasks", []):
        lo, hi = t["ci95_newcombe"]
        detail = (
            f"{t['items']} items: ref {t['reference_accuracy'] * 100:.1f} % → cand "
            f"{t['candidate_accuracy'] * 100:.1f} % (Δ {t['delta'] * 100:+.1f}, 95 % CI {lo * 100:+.1f}.."
            f"{hi * 100:+.1f}), McNemar p={t['mcnemar']['p_value']:.3g}; {t['rules']['reason']}"
        )
        table.add_row(f"task {t['task']}", status_text(t["status"]), detail)
    console.print(table)
    for f in data.get("findings", []):
        console.print(f"[red]finding:[/] {f['message']}")
    console.print(f"overall: {status_text(data['status'])}  ·  results in {data['run_dir']}/consistency/")
