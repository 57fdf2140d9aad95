"""Regenerates the shipped arithmetic tasks deterministically: `python make_tasks.py` (writes next to it)."""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent / "tasks"


def arithmetic(name: str, op: str, n: int, lo: int, hi: int, seed: int) -> None:
    """Write n seeded 'What is a+b?' (or a*b) questions with operands in [lo, hi] to tasks/<name>.jsonl."""
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


def number_sequence(name: str, n: int, seed: int) -> None:
    """Continue a counting sequence ("37, 39, 41, 43," → 45): steps chosen so the demo model gets
    most right (measured on Gemma-3-270M: steps +1/−1 ~95 %, +2/+10 ~80 %), which gives the accuracy
    gate a wide margin (5 % of a high accuracy) and lets ~200 paired items decide it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        step = rng.choice((1, 1, 2, 10, -1))
        a = rng.randint(20, 900)
        seq = ", ".join(str(a + step * k) for k in range(4)) + ","
        rows.append({"id": f"{name}-{i}", "prompt": seq, "answer": str(a + 4 * step), "stop": [","]})
    with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    number_sequence("number_sequence", 800, seed=20261127)
    arithmetic("arithmetic_add", "+", 100, 2, 99, seed=20261122)
    arithmetic("arithmetic_mul", "*", 100, 2, 12, seed=20261123)
