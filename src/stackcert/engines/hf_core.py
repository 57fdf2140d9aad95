"""The transformers model behind the hf server and hf offline: greedy generation and prompt scoring.

Runs only inside a child process (it imports torch and transformers). A plain token-by-token
loop with a KV cache keeps the log-probabilities exact and lets the server stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "half": torch.float16,
    "float32": torch.float32,
    "float": torch.float32,
    "auto": "auto",
}


@dataclass
class Step:
    """One generated token."""

    token_id: int
    logprob: float
    top: dict[int, float] = field(default_factory=dict)


def apply_operators(selection: dict[str, Any] | None, effective_ops_path: Path | None) -> list[str] | None:
    """Call the operator library hook (engines/operators.py) before any generation."""
    if not selection:
        return None
    try:
        from stackcert.engines import operators
    except ImportError as exc:
        # A plain line the parent's log scan classifies (import_error, L1).
        raise SystemExit(f"ImportError: operator selection needs stackcert.engines.operators: {exc}") from exc
    from stackcert.config import OperatorSelection

    return list(operators.apply(OperatorSelection.model_validate(selection), record_path=effective_ops_path))


class HFModel:
    """A transformers causal LM and its tokenizer, loaded once: encode, decode, generate, score."""

    def __init__(
        self,
        path: str,
        tokenizer: str,
        dtype: str = "bfloat16",
        max_model_len: int = 2048,
        trust_remote_code: bool = False,
        chat_template: str | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=trust_remote_code)
        if chat_template:
            self.tokenizer.chat_template = Path(chat_template).read_text()
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=_DTYPES.get(dtype, "auto"), trust_remote_code=trust_remote_code, **extra
        )
        self.model.eval()
        self.max_model_len = max_model_len
        eos = self.model.generation_config.eos_token_id if self.model.generation_config else None
        eos_ids = eos if isinstance(eos, list) else [eos]
        if self.tokenizer.eos_token_id is not None:
            eos_ids.append(self.tokenizer.eos_token_id)
        self.eos_ids = {int(e) for e in eos_ids if e is not None}

    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer has a chat template."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def encode(self, prompt: str | list[int]) -> list[int]:
        """The prompt's token ids (special tokens added); a list of ids is passed through."""
        if isinstance(prompt, list):
            return [int(t) for t in prompt]
        return list(self.tokenizer(prompt)["input_ids"])

    def chat_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        """The token ids of chat messages through the chat template, ready for the assistant's turn."""
        out: Any = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(out, "keys"):
            out = out["input_ids"]
        return [int(t) for t in out]

    def decode(self, ids: list[int]) -> str:
        """The text of token ids, special tokens skipped."""
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def token_str(self, tid: int) -> str:
        """The text of one token id, as the API reports it in log-probs."""
        return str(self.tokenizer.decode([tid]))

    @torch.inference_mode()
    def generate(
        self,
        ids: list[int],
        max_tokens: int,
        top_logprobs: int = 0,
        temperature: float = 0.0,
        ignore_eos: bool = False,
    ) -> Iterator[Step]:
        """Yield generated tokens one by one (greedy at temperature 0)."""
        if max_tokens <= 0:
            return
        past = None
        inp = torch.tensor([ids])
        for _ in range(max_tokens):
            out = self.model(input_ids=inp, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            if temperature > 0:
                tid = int(torch.multinomial(torch.softmax(logp / temperature, dim=-1), 1).item())
            else:
                tid = int(torch.argmax(logp).item())
            top: dict[int, float] = {}
            if top_logprobs > 0:
                vals, idx = torch.topk(logp, top_logprobs)
                top = {int(i): float(v) for i, v in zip(idx.tolist(), vals.tolist(), strict=True)}
            yield Step(tid, float(logp[tid].item()), top)
            if tid in self.eos_ids and not ignore_eos:
                return
            inp = torch.tensor([[tid]])

    @torch.inference_mode()
    def score_prompt(self, ids: list[int], top_logprobs: int = 0) -> list[Step | None]:
        """Teacher-forced log-prob of every prompt token (the first has none)."""
        logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        steps: list[Step | None] = [None]
        for pos in range(1, len(ids)):
            row = logp[pos - 1]
            top: dict[int, float] = {}
            if top_logprobs > 0:
                vals, idx = torch.topk(row, top_logprobs)
                top = {int(i): float(v) for i, v in zip(idx.tolist(), vals.tolist(), strict=True)}
            steps.append(Step(ids[pos], float(row[ids[pos]].item()), top))
        return steps
