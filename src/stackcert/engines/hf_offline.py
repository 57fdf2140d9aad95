"""Child process: `python -m stackcert.engines.hf_offline IN.json OUT.json` (greedy transformers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stackcert.engines.hf_core import HFModel, apply_operators


def main(argv: list[str]) -> int:
    """Generate greedily for every prompt of the IN request file; write the completions and ops to OUT."""
    inp, out = argv
    req = json.loads(Path(inp).read_text())
    ops = apply_operators(
        req.get("operators"), Path(req["effective_ops"]) if req.get("effective_ops") else None
    )
    m = req["model"]
    args = req["engine_args"]
    model = HFModel(
        m["path"],
        m["tokenizer"],
        str(args.get("dtype", m["dtype"])),
        int(args.get("max_model_len", m["max_model_len"])),
        bool(m["trust_remote_code"]),
        attn_implementation=args.get("attn_implementation"),
    )
    top = int(req["top_logprobs"])
    completions = []
    for prompt in req["prompts"]:
        steps = list(model.generate(model.encode(prompt), int(req["max_tokens"]), top))
        ids = [s.token_id for s in steps]
        finish = "stop" if steps and ids[-1] in model.eos_ids else "length"
        completions.append(
            {
                "prompt": prompt,
                "text": model.decode(ids),
                "token_ids": ids,
                "finish_reason": finish,
                "top_logprobs": [s.top for s in steps] if top else [],
            }
        )
    Path(out).write_text(json.dumps({"completions": completions, "effective_ops": ops}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
