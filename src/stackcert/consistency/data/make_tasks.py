"""Regenerates the shipped arithmetic tasks deterministically: `python make_tasks.py` (writes next to it)."""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent / "tasks"


def arithmetic(name: str, op: str, n: int, lo: int, hi: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        answer = a + b if op == "+" else a * b
        rows.append(
            {"id": f"{name}-{i}", "prompt": f"Question: What is {a}{op}{b}?\nAnswer:", "answer": str(answer)}
        )
    HERE.mkdir(exist_ok=True)
    with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    arithmetic("arithmetic_add", "+", 100, 2, 99, seed=20261122)
    arithmetic("arithmetic_mul", "*", 100, 2, 12, seed=20261123)
