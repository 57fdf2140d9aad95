"""Child process: GGUF -> Hugging Face checkpoint (bf16 safetensors + tokenizer).

Run as `python -m stackcert.demo.convert --gguf FILE --out DIR --result FILE.json`. It runs in
its own process (heavy imports: torch, transformers) so the CLI stays light and a crash is
contained. It never talks to a hub: the parent sets HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE.
Exit codes: 0 done, 1 conversion failed, 3 the saved tokenizer does not prepend <bos>.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

BOS_ID = 2  # Gemma's <bos>; without it Gemma produces garbage.
EXIT_BAD_BOS = 3


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def has_chat_template(folder: Path) -> bool:
    """A chat template lives in tokenizer_config.json or in chat_template.jinja/.json."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    cfg = folder / "tokenizer_config.json"
    if cfg.is_file():
        try:
            return bool(json.loads(cfg.read_text(encoding="utf-8")).get("chat_template"))
        except ValueError:
            return False
    return False


def convert(gguf: Path, out: Path) -> dict[str, Any]:
    """Dequantize a GGUF file into a bf16 checkpoint and a <bos>-prepending tokenizer; a summary of it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    started = time.monotonic()
    folder, name = str(gguf.parent), gguf.name
    # dequantize=True: transformers 5 otherwise keeps GGUF blocks and save_pretrained fails.
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=name, dequantize=True),
    )
    model.save_pretrained(out)
    print(f"model saved in {time.monotonic() - started:.1f}s", flush=True)
    del model

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tok.add_bos_token = True  # type: ignore[misc]  # a setter exists at run time
    tok.save_pretrained(out)

    reloaded = AutoTokenizer.from_pretrained(str(out))
    ids = reloaded("Hello").input_ids
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    return {
        "bos_ok": bool(ids) and ids[0] == BOS_ID,
        "probe_ids": list(ids),
        "bos_token_id": BOS_ID,
        "architectures": config.get("architectures") or [],
        "model_type": config.get("model_type"),
        "has_chat_template": has_chat_template(out),
        "versions": {
            "transformers": _version("transformers"),
            "gguf": _version("gguf"),
            "torch": _version("torch"),
            "safetensors": _version("safetensors"),
            "tokenizers": _version("tokenizers"),
            "python": platform.python_version(),
        },
        "duration_s": round(time.monotonic() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: convert and write the result JSON; exit 3 when the tokenizer does not prepend <bos>."""
    parser = argparse.ArgumentParser(prog="python -m stackcert.demo.convert")
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    result = convert(args.gguf, args.out)
    args.result.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result), flush=True)
    if not result["bos_ok"]:
        print(f"error: saved tokenizer does not prepend <bos> (id {BOS_ID}): {result['probe_ids']}")
        return EXIT_BAD_BOS
    return 0


if __name__ == "__main__":
    sys.exit(main())
