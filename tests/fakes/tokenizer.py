"""FAKE word-level tokenizer for unit tests (the real one needs the demo model's files).

One token per space-separated word, `<bos>` (id 0) prepended like Gemma's; enough for the
benchmark's exact-length prompt builder and output counting."""

from __future__ import annotations

WORDS = [f"w{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(400)]


class FakeWordTokenizer:
    path = "fake-word-tokenizer"

    def __init__(self) -> None:
        self.vocab = ["<bos>", *WORDS]
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        ids = [self.ids.get(w, 1) for w in text.split()]
        return ([0] if special else []) + ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] if i == 0 else " " + self.vocab[i] for i in ids)
