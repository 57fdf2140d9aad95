"""Child script for tests/e2e/test_demo_model.py: greedy vLLM-CPU offline generation, JSON out.

Temporary: the e2e test should switch to the engine API (stackcert.engines.vllm offline runner)
once it exists. vLLM spawns workers, so LLM(...) must run under `if __name__ == "__main__"`.
Usage: python _vllm_generate.py MODEL_DIR OUT.json PROMPT [MAX_TOKENS]
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    from vllm import LLM, SamplingParams

    model, out, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
    max_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    started = time.monotonic()
    llm = LLM(
        model=model, dtype="bfloat16", enforce_eager=True, max_model_len=512, gpu_memory_utilization=0.3
    )
    result = llm.generate([prompt], SamplingParams(temperature=0.0, max_tokens=max_tokens))[0]
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "text": result.outputs[0].text,
                "token_ids": list(result.outputs[0].token_ids),
                "prompt_token_ids": list(result.prompt_token_ids or []),
                "duration_s": time.monotonic() - started,
            },
            fh,
        )


if __name__ == "__main__":
    main()
