"""`stackcert consistency`: greedy tokens, teacher-forced log-probs and paired task accuracy, A vs B."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from stackcert.cli.app import JsonFlag, app, console, emit
from stackcert.cli.common import (
    CandidateOpt,
    ModelOpt,
    PresetOpt,
    ReferenceOpt,
    RunDirOpt,
    cli_progress,
    default_run_dir,
    resolve_cli_model,
    status_text,
)
from stackcert.config import StackSpec, load_preset
from stackcert.consistency import ConsistencyOptions, ConsistencyResult, run_consistency
from stackcert.engines.base import ModelRef, ServerTimeouts
from stackcert.errors import ExitCode, UsageError
from stackcert.paths import stack_folder
from stackcert.pipeline.servers import ServerPool
from stackcert.yamlio import load_model_file

EXIT = {"pass": ExitCode.PASS, "fail": ExitCode.FAIL, "retest": ExitCode.RETEST}

Opt = typer.Option

# Flag -> where it goes in ConsistencyOptions. A flag that is not given leaves the option's own
# default (or the --options file's value): the defaults live in one place, the model.
FLAG_PATHS: dict[str, tuple[str, ...]] = {
    "--phase": ("phases",),
    "--prompts": ("prompts_file",),
    "--task": ("tasks",),
    "--lmeval-task": ("lmeval_tasks",),
    "--lmeval-include": ("lmeval_include_path",),
    "--lmeval-limit": ("lmeval_limit",),
    "--max-tokens": ("tokens", "max_tokens"),
    "--top-k": ("tokens", "top_k"),
    "--tie-margin": ("tokens", "tie_margin"),
    "--score-top-k": ("score_top_k",),
    "--sharegpt": ("sharegpt_texts",),
    "--token-budget": ("token_budget",),
    "--max-texts": ("max_sharegpt_texts",),
    "--margin": ("tolerance", "margin"),
    "--noise-multiple": ("tolerance", "noise_multiple"),
    "--max-kl": ("tolerance", "fixed_mean_kl"),
    "--task-limit": ("task_limit",),
    "--task-budget": ("task_budget",),
    "--concurrency": ("concurrency",),
}


def build_options(file: Path | None, flags: dict[str, Any]) -> ConsistencyOptions:
    """ConsistencyOptions from an --options YAML file, then the flags given; one validation for all."""
    data = load_model_file(file, ConsistencyOptions).model_dump() if file is not None else {}
    for flag, value in flags.items():
        if value is None or value == []:
            continue
        *parents, leaf = FLAG_PATHS[flag]
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return ConsistencyOptions.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = tuple(str(x) for x in first["loc"])
        flag = next((f for f, p in FLAG_PATHS.items() if p == path[: len(p)]), ".".join(path))
        raise UsageError(f"bad value for {flag}: {first['msg']}", where=flag, fix="see --help") from None


def _stacks(
    preset_name: str,
    reference: str | None,
    candidate: str | None,
    urls: tuple[str | None, str | None],
) -> tuple[StackSpec, StackSpec]:
    """The two stacks: the preset's (or named) ones, or endpoint stacks for running servers."""
    preset = load_preset(preset_name)
    ref_name, cand_name = reference or preset.reference, candidate or preset.candidate
    if urls[0] and urls[1]:
        return (
            StackSpec(name=ref_name, engine="endpoint", url=urls[0]),
            StackSpec(name=cand_name, engine="endpoint", url=urls[1]),
        )
    if urls[0] or urls[1]:
        raise UsageError("give both --reference-url and --candidate-url, or neither")
    return preset.stack(ref_name), preset.stack(cand_name)


def _model(
    preset_name: str, model_path: Path | None, urls: tuple[str | None, str | None], served: str | None
) -> ModelRef:
    if urls[0] and urls[1]:
        if model_path is None:
            raise UsageError("--reference-url needs --model (the tokenizer folder)", fix="add --model PATH")
        return ModelRef(path=model_path, tokenizer=model_path, served_name=served or model_path.name)
    return resolve_cli_model(load_preset(preset_name), model_path)


@app.command("consistency")
def consistency(
    reference: ReferenceOpt = None,
    candidate: CandidateOpt = None,
    preset: PresetOpt = "demo",
    model_path: ModelOpt = None,
    options_file: Annotated[
        Path | None, Opt("--options", help="YAML of consistency options (docs/consistency.md); flags win.")
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
    lmeval_limit: Annotated[int | None, Opt("--lmeval-limit", help="Items per lm-eval task.")] = None,
    phase: Annotated[list[str] | None, Opt("--phase", help="tokens | logprobs | tasks (repeatable).")] = None,
    max_tokens: Annotated[int | None, Opt("--max-tokens", help="Greedy tokens per prompt.")] = None,
    top_k: Annotated[int | None, Opt("--top-k", help="Top-k for the divergence rule.")] = None,
    tie_margin: Annotated[
        float | None,
        Opt("--tie-margin", help="Fallback rule (no cross-scoring): near ties within this many nats."),
    ] = None,
    score_top_k: Annotated[int | None, Opt("--score-top-k", help="Top-k log-probs per scored token.")] = None,
    sharegpt: Annotated[
        int | None, Opt("--sharegpt", help="ShareGPT conversations to score (0 = none).")
    ] = None,
    token_budget: Annotated[int | None, Opt("--token-budget", help="Tokens per scored text.")] = None,
    max_texts: Annotated[
        int | None, Opt("--max-texts", help="ShareGPT texts scored at most while a check is inconclusive.")
    ] = None,
    margin: Annotated[float | None, Opt("--margin", help="Limits ≥ this × the equivalence envelope.")] = None,
    noise_multiple: Annotated[
        float | None, Opt("--noise-multiple", help="Limits ≥ this × the noise.")
    ] = None,
    max_kl: Annotated[float | None, Opt("--max-kl", help="Fixed mean-KL limit (ignores the floor).")] = None,
    task_limit: Annotated[
        int | None, Opt("--task-limit", help="Start with the first N items of each task.")
    ] = None,
    task_budget: Annotated[
        int | None, Opt("--task-budget", help="Items at most per task while inconclusive.")
    ] = None,
    concurrency: Annotated[int | None, Opt("--concurrency", help="Requests in flight per server.")] = None,
    reference_url: Annotated[str | None, Opt("--reference-url", help="Use a running server.")] = None,
    candidate_url: Annotated[str | None, Opt("--candidate-url", help="Use a running server.")] = None,
    served_model: Annotated[str | None, Opt("--served-model", help="Model name the URLs serve.")] = None,
    run_dir: RunDirOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Compare a candidate stack with the reference: tokens, log-probs, task accuracy (exit 4 = retest)."""
    flags = {
        "--phase": phase, "--prompts": prompts, "--task": task, "--lmeval-task": lmeval_task,
        "--lmeval-include": lmeval_include, "--lmeval-limit": lmeval_limit, "--max-tokens": max_tokens,
        "--top-k": top_k, "--tie-margin": tie_margin, "--score-top-k": score_top_k, "--sharegpt": sharegpt,
        "--token-budget": token_budget, "--max-texts": max_texts, "--margin": margin,
        "--noise-multiple": noise_multiple, "--max-kl": max_kl, "--task-limit": task_limit,
        "--task-budget": task_budget, "--concurrency": concurrency,
    }  # fmt: skip
    opts = build_options(options_file, flags)
    _validate_inputs(opts)
    urls = (reference_url, candidate_url)
    ref_stack, cand_stack = _stacks(preset, reference, candidate, urls)
    model = _model(preset, model_path, urls, served_model)
    out = run_dir or default_run_dir("consistency")
    # The same pool as `stackcert run`: both up at once (two vLLM-CPU instances fit at 0.3 each),
    # started one after the other, both stopped when the comparison is done or fails.
    with (
        cli_progress(json_out) as progress,
        ServerPool(None, start_timeout_s=ServerTimeouts().absolute, progress=progress) as pool,
    ):
        ref = pool.start(ref_stack, model, stack_folder(out, ref_stack.name))
        cand = pool.start(cand_stack, model, stack_folder(out, cand_stack.name))
        result = run_consistency(
            ref, cand, model, options=opts, out_dir=out / "consistency", progress=progress
        )
    data = {"run_dir": str(out), **result.model_dump(mode="json")}  # --json: the result and its folder
    emit(data, as_json=json_out, render=lambda _: render(result, out))
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


def render(result: ConsistencyResult, run_dir: Path) -> None:
    """The three phases as a table, the findings, the overall status."""
    table = Table(title=f"consistency: {result.reference} vs {result.candidate}")
    for column in ("phase", "status", "detail"):
        table.add_column(column, overflow="fold")
    tok = result.tokens
    if tok is not None and tok.summary is not None:
        s = tok.summary
        detail = (
            f"{s.prompts} prompts: {s.identical} identical, {s.diverged_ok} diverged as near ties "
            f"({s.cross_scored} cross-scored), {s.failed} failed; flags {s.flags or '-'}"
        )
        table.add_row("tokens", status_text(tok.status), detail)
    lp = result.logprobs
    if lp is not None and lp.comparison is not None:
        c = lp.comparison
        checks = ", ".join(
            f"{k.metric} {k.value:.3g} (≤ {k.ci_high:.3g}) vs {k.limit:.3g}: {k.decision}" for k in lp.checks
        )
        detail = (
            f"{c.tokens} tokens, mean KL {c.mean_kl:.2e}, top-1 {c.top1_agreement * 100:.1f} %, "
            f"|Δlp| p99 {c.dlogprob_p99:.3f} max {c.dlogprob_max:.3f}; {checks}"
        )
        table.add_row("logprobs", status_text(lp.status), detail)
    for t in result.tasks.tasks if result.tasks is not None else []:
        lo, hi = t.ci95_newcombe
        detail = (
            f"{t.items} items: ref {t.reference_accuracy * 100:.1f} % → cand "
            f"{t.candidate_accuracy * 100:.1f} % (Δ {t.delta * 100:+.1f}, 95 % CI {lo * 100:+.1f}.."
            f"{hi * 100:+.1f}), McNemar p={t.mcnemar.p_value:.3g}; {t.rules.reason}"
        )
        table.add_row(f"task {t.task}", status_text(t.status), detail)
    console.print(table)
    for f in result.findings:
        console.print(f"[red]finding:[/] {f.message}")
    console.print(f"overall: {status_text(result.status)}  ·  results in {run_dir}/consistency/")
