"""Prompt and task files: good input loads, bad lines name their line number; CLI exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.consistency.tasks import builtin_task_names, is_correct, load_task
from stackcert.consistency.texts import _iter_array, builtin_prompts, load_prompt_file
from stackcert.errors import UsageError


def test_builtin_sets_load() -> None:
    assert len(builtin_prompts()) >= 10
    assert {"arithmetic_add", "arithmetic_mul"} <= set(builtin_task_names())
    task = load_task("arithmetic_mul")
    assert len(task.items) == 100 and task.items[0].match == "number"


def test_malformed_task_line_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text('{"prompt": "a", "answer": "1"}\n\n{"prompt": "b", "answer": \n')
    with pytest.raises(UsageError) as err:
        load_task(str(f))
    assert err.value.where == f"{f}:3"
    f.write_text('{"prompt": "a", "answer": "1"}\n{"question": "b"}\n')
    with pytest.raises(UsageError) as err:
        load_task(str(f))
    assert err.value.where == f"{f}:2"


def test_unknown_task_suggests() -> None:
    with pytest.raises(UsageError) as err:
        load_task("arithmetic_mull")
    assert "arithmetic_mul" in (err.value.fix or "")


def test_prompt_file_errors(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "x"}\n["not", "an", "object"]\n')
    with pytest.raises(UsageError) as err:
        load_prompt_file(f)
    assert err.value.where == f"{f}:2"
    with pytest.raises(UsageError):
        load_prompt_file(tmp_path / "missing.jsonl")


def test_answer_extraction() -> None:
    item = load_task("arithmetic_mul").items[0]  # 11*12 = 132
    assert is_correct(item, " 11*12 = 132\nQuestion: ...")
    assert not is_correct(item, " 11*12 = 110")
    assert not is_correct(item, " I do not know")


def test_cut_off_json_array_stops_cleanly() -> None:
    assert list(_iter_array('[{"a": 1}, {"b": 2}, {"c": "unterminated')) == [{"a": 1}, {"b": 2}]


def test_cli_malformed_task_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stackcert.cli import main

    f = tmp_path / "t.jsonl"
    f.write_text('{"prompt": "a", "answer": "1"}\nnot json\n')
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "consistency",
                "--task",
                str(f),
                "--reference-url",
                "http://127.0.0.1:9",
                "--candidate-url",
                "http://127.0.0.1:9",
                "--model",
                str(tmp_path),
            ]
        )
    assert exc.value.code == 2
    assert f"{f}:2" in capsys.readouterr().err.replace("\n", "")


def test_the_migration_prompt_set_has_the_seed_categories() -> None:
    """`--prompts migration`: factual, Chinese, coding and two competition-math items, by name."""
    import json

    from stackcert.consistency.texts import prompt_set_path

    path = prompt_set_path(Path("migration"))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    cats = [r["category"] for r in rows]
    assert {"factual", "chinese", "coding"} <= set(cats) and cats.count("competition_math") == 2
    assert load_prompt_file(Path("migration")) == [r["prompt"] for r in rows]
    assert any("中国" in p for p in load_prompt_file(Path("migration")))
