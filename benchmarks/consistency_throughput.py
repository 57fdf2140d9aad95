"""Teacher-forced scoring throughput, three ways, same texts, same server, one run.

    python benchmarks/consistency_throughput.py --base-url http://127.0.0.1:8021 \
        --model /path/to/checkpoint --served-model gemma-3-270m [--texts 8 --budget 96]

1. minimal client: only sends the requests (echo + logprobs, max_tokens 1) at concurrency 1 and 8
   and reads usage.prompt_tokens — the server's ceiling;
2. stackcert: CompletionsClient.score through gather_bounded (parsing, token ids, top-k) at 8;
3. lm-eval `local-completions` with its default settings (num_concurrent=1, batch_size=1) on a
   `loglikelihood_rolling` task over the same texts, as a child process, end to end.
Prints tokens scored per second and end-to-end wall time for each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from stackcert.consistency.client import CompletionsClient, gather_bounded
from stackcert.consistency.lmeval import lmeval_argv, offline_env
from stackcert.consistency.texts import builtin_prompts, sharegpt_texts, tokenizer_truncator

TOP_K = 10


def texts_for(model: Path, n: int, budget: int) -> list[str]:
    return sharegpt_texts(n, budget, tokenizer_truncator(model)) or builtin_prompts()[:n]


async def minimal(base: str, served: str, texts: list[str], conc: int) -> tuple[int, float]:
    sem = asyncio.Semaphore(conc)
    url = base.rstrip("/") + "/v1/completions"
    async with httpx.AsyncClient(timeout=900) as http:

        async def one(t: str) -> int:
            body = {
                "model": served,
                "prompt": t,
                "max_tokens": 1,
                "echo": True,
                "logprobs": TOP_K,
                "temperature": 0.0,
                "return_tokens_as_token_ids": True,
            }
            async with sem:
                r = await http.post(url, json=body)
            return int(r.json()["usage"]["prompt_tokens"])

        t0 = time.perf_counter()
        counts = await asyncio.gather(*(one(t) for t in texts))
        return sum(counts), time.perf_counter() - t0


async def stackcert_way(base: str, served: str, texts: list[str], conc: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    async with CompletionsClient(base, served) as c:
        scored = await gather_bounded(texts, lambda t: c.score(t, top_k=TOP_K), conc)
    # + 1 per text: the first (BOS) position has no log-prob but was processed by the server
    return sum(len(s.steps) + 1 for s in scored), time.perf_counter() - t0


def lmeval_way(base: str, served: str, model: Path, texts: list[str]) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "texts.jsonl"
        data.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
        (folder / "sc_rolling.yaml").write_text(
            "task: sc_rolling\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
            f"    test: {data}\ntest_split: test\noutput_type: loglikelihood_rolling\n"
            'doc_to_text: ""\ndoc_to_target: "{{text}}"\nmetric_list:\n  - metric: word_perplexity\n'
        )
        argv = lmeval_argv(
            completions_url=base.rstrip("/") + "/v1/completions",
            served_model=served,
            tokenizer=model,
            task="sc_rolling",
            include_path=folder,
            output_path=folder / "out",
        )
        # lm-eval's defaults: drop the num_concurrent / max_retries stackcert sets
        i = argv.index("--model_args") + 1
        argv[i] = ",".join(
            kv for kv in argv[i].split(",") if not kv.startswith(("num_concurrent", "max_retries"))
        )
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=offline_env(), capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"lm-eval failed:\n{done.stderr[-2000:]}")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model))
    return sum(len(tok(t)["input_ids"]) for t in texts), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", type=Path, required=True, help="checkpoint folder (tokenizer)")
    ap.add_argument("--served-model", required=True)
    ap.add_argument("--texts", type=int, default=8)
    ap.add_argument("--budget", type=int, default=96)
    ap.add_argument("--skip-lmeval", action="store_true")
    a = ap.parse_args()
    texts = texts_for(a.model, a.texts, a.budget)
    rows: list[tuple[str, int, float]] = []
    asyncio.run(minimal(a.base_url, a.served_model, texts[:1], 1))  # warm-up, not timed
    for conc in (1, 8):
        n, wall = asyncio.run(minimal(a.base_url, a.served_model, texts, conc))
        rows.append((f"minimal client, concurrency {conc}", n, wall))
        print(rows[-1], flush=True)
    n, wall = asyncio.run(stackcert_way(a.base_url, a.served_model, texts, 8))
    rows.append(("stackcert (concurrency 8)", n, wall))
    print(rows[-1], flush=True)
    if not a.skip_lmeval:
        n, wall = lmeval_way(a.base_url, a.served_model, a.model, texts)
        rows.append(("lm-eval local-completions (defaults)", n, wall))
    ceiling = max(r[1] / r[2] for r in rows[:2])
    print(f"{len(texts)} texts, budget {a.budget} tokens, top-k {TOP_K}, server {a.base_url}\n")
    print("| way | tokens | wall s | tokens/s | % of ceiling |")
    print("|---|---:|---:|---:|---:|")
    for name, n, wall in rows:
        print(f"| {name} | {n} | {wall:.1f} | {n / wall:.1f} | {100 * n / wall / ceiling:.0f} % |")


if __name__ == "__main__":
    main()
