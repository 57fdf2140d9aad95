"""Local generation tasks (JSONL) run on both stacks and compared item by item.

A task file holds one `{"prompt": ..., "answer": ...}` per line (optional "id", and "match":
"number" | "exact"). The model answers greedily until a newline; "number" takes the last number of the
first line of the answer (`' 12+7 = 19'` → 19), "exact" compares the stripped first line.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from stackcert.config import pick
from stackcert.consistency.stats import (
    McNemar,
    PairedCounts,
    RuleOutcome,
    RuleSettings,
    decide_accuracy,
    mcnemar,
    newcombe_paired_ci,
    wald_paired_ci,
)
from stackcert.consistency.texts import read_jsonl
from stackcert.errors import UsageError

Match = Literal["number", "exact"]
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class TaskItem(BaseModel):
    """One question with its answer and how to read the model's reply."""

    id: str
    prompt: str
    answer: str
    match: Match
    stop: list[str] = Field(default_factory=lambda: ["\n"], description="generation stops at these")


class Task(BaseModel):
    """A loaded task: its name, where it came from, its items and the generation length."""

    name: str
    source: str
    items: list[TaskItem]
    max_tokens: int = 16


def builtin_task_names() -> list[str]:
    """The names of the tasks shipped with stackcert, sorted."""
    folder = resources.files("stackcert.consistency") / "data" / "tasks"
    return sorted(p.name.removesuffix(".jsonl") for p in folder.iterdir() if p.name.endswith(".jsonl"))


def _is_number(s: str) -> bool:
    return _NUMBER.fullmatch(s.strip()) is not None


def load_task(name_or_file: str, *, limit: int | None = None) -> Task:
    """A built-in task by name, or a JSONL file. Bad lines raise UsageError naming the line."""
    path = Path(name_or_file)
    if not name_or_file.endswith(".jsonl") and not path.exists():
        names = {n: n for n in builtin_task_names()}
        name = pick(name_or_file, names, what="task", where="--task")
        path = Path(str(resources.files("stackcert.consistency") / "data" / "tasks" / f"{name}.jsonl"))
    items = []
    for lineno, row in read_jsonl(path, what="task file"):
        prompt, answer = row.get("prompt"), row.get("answer")
        if not isinstance(prompt, str) or not prompt or answer is None:
            raise UsageError(
                "a task line needs 'prompt' (string) and 'answer'",
                where=f"{path}:{lineno}",
                fix='write {"prompt": "...", "answer": "..."} per line',
            )
        match = row.get("match") or ("number" if _is_number(str(answer)) else "exact")
        if match not in ("number", "exact"):
            raise UsageError(
                f"unknown match '{match}'", where=f"{path}:{lineno}", fix="use 'number' or 'exact'"
            )
        stop = row.get("stop", ["\n"])
        if not isinstance(stop, list) or not all(isinstance(x, str) for x in stop):
            raise UsageError(
                "'stop' must be a list of strings", where=f"{path}:{lineno}", fix='e.g. "stop": [","]'
            )
        items.append(
            TaskItem(id=str(row.get("id", lineno)), prompt=prompt, answer=str(answer), match=match, stop=stop)
        )
    if not items:
        raise UsageError("the task file has no items", where=str(path), fix="add task lines")
    return Task(name=path.stem, source=str(path), items=items[:limit] if limit else items)


def is_correct(item: TaskItem, output: str) -> bool:
    """Whether a reply's first line answers the item: last number equal, or the exact stripped text."""
    line = output.strip().split("\n", 1)[0].strip()
    if item.match == "exact":
        return line == item.answer.strip()
    numbers = _NUMBER.findall(line)
    if not numbers:
        return False
    try:
        return float(numbers[-1]) == float(item.answer)
    except ValueError:
        return False


class ItemResult(BaseModel):
    """One task item on both stacks: the two replies and whether each was correct."""

    id: str
    reference_output: str
    candidate_output: str
    reference_correct: bool
    candidate_correct: bool


class TaskComparison(BaseModel):
    """One task on both stacks: accuracies, paired CIs, McNemar, the accuracy rules and the status."""

    task: str
    source: str
    items: int
    reference_accuracy: float
    candidate_accuracy: float
    delta: float = Field(description="candidate − reference accuracy")
    ci95_newcombe: tuple[float, float]
    ci95_wald: tuple[float, float]
    counts: PairedCounts
    mcnemar: McNemar
    rules: RuleOutcome
    status: Literal["pass", "fail", "retest"]
    per_item: list[ItemResult] = Field(default_factory=list)


def compare_task(
    task: Task, ref_outputs: list[str], cand_outputs: list[str], rules: RuleSettings | None = None
) -> TaskComparison:
    """The paired comparison of a task from both stacks' replies, in item order."""
    ref_ok = [is_correct(it, o) for it, o in zip(task.items, ref_outputs, strict=True)]
    cand_ok = [is_correct(it, o) for it, o in zip(task.items, cand_outputs, strict=True)]
    return compare_paired(
        task.name,
        task.source,
        [it.id for it in task.items],
        ref_ok,
        cand_ok,
        rules,
        ref_outputs,
        cand_outputs,
    )


def compare_paired(
    name: str,
    source: str,
    ids: list[str],
    ref_ok: list[bool],
    cand_ok: list[bool],
    rules: RuleSettings | None = None,
    ref_outputs: list[str] | None = None,
    cand_outputs: list[str] | None = None,
) -> TaskComparison:
    """Paired statistics and the FlagRelease verdict from per-item correctness on both stacks."""
    counts = PairedCounts.from_items(ref_ok, cand_ok)
    n = counts.n
    ref_acc = sum(ref_ok) / n if n else 0.0
    cand_acc = sum(cand_ok) / n if n else 0.0
    outcome = decide_accuracy(counts, rules)
    ro = ref_outputs or [""] * n
    co = cand_outputs or [""] * n
    return TaskComparison(
        task=name,
        source=source,
        items=n,
        reference_accuracy=ref_acc,
        candidate_accuracy=cand_acc,
        delta=cand_acc - ref_acc,
        ci95_newcombe=newcombe_paired_ci(counts),
        ci95_wald=wald_paired_ci(counts),
        counts=counts,
        mcnemar=mcnemar(counts.ref_only, counts.cand_only),
        rules=outcome,
        status=outcome.verdict,
        per_item=[
            ItemResult(id=i, reference_output=r, candidate_output=c, reference_correct=a, candidate_correct=b)
            for i, r, c, a, b in zip(ids, ro, co, ref_ok, cand_ok, strict=True)
        ],
    )
