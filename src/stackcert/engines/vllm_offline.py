"""Child process: `python -m stackcert.engines.vllm_offline IN.json OUT.json` — greedy vllm.LLM generation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

_OWN_KEYS = {"port", "host", "served_model_name", "chat_template", "disable_uvicorn_access_log"}


def llm_kwargs(req: dict[str, Any]) -> dict[str, Any]:
    """The vllm.LLM arguments of a request: the model's, a CPU build's memory fraction, the engine_args."""
    from stackcert.engines.vllm import cpu_memory_fraction, is_cpu_build

    model = req["model"]
    kwargs: dict[str, Any] = {
        "model": model["path"],
        "tokenizer": model["tokenizer"],
        "dtype": model["dtype"],
        "max_model_len": model["max_model_len"],
        "trust_remote_code": model["trust_remote_code"],
    }
    if is_cpu_build():
        kwargs["gpu_memory_utilization"] = cpu_memory_fraction()
    kwargs.update({k: v for k, v in req["engine_args"].items() if k not in _OWN_KEYS})
    return kwargs


def main(argv: list[str]) -> int:
    """Generate greedily for every prompt of the IN request file with vllm.LLM; write completions to OUT."""
    inp, out = argv
    req = json.loads(Path(inp).read_text())
    from vllm import LLM, SamplingParams

    llm = LLM(**llm_kwargs(req))
    top = int(req["top_logprobs"])
    params = SamplingParams(temperature=0.0, max_tokens=int(req["max_tokens"]), logprobs=top or None)
    completions = []
    for res in llm.generate(req["prompts"], params):
        o = res.outputs[0]
        tops = (
            [{int(t): float(lp.logprob) for t, lp in step.items()} for step in (o.logprobs or [])]
            if top
            else []
        )
        completions.append(
            {
                "prompt": res.prompt,
                "text": o.text,
                "token_ids": list(o.token_ids),
                "finish_reason": o.finish_reason,
                "top_logprobs": tops,
            }
        )
    Path(out).write_text(json.dumps({"completions": completions}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
