from __future__ import annotations

import json
from pathlib import Path

from stackcert import SCHEMA_VERSION, __version__
from stackcert.errors import ExitCode, ModelError
from stackcert.jsonio import append_jsonl, envelope, write_json_atomic


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "state.json"
    write_json_atomic(target, {"v": 1})
    write_json_atomic(target, envelope("state", {"v": 2}))
    data = json.loads(target.read_text())
    assert data["v"] == 2
    assert data["schema_version"] == SCHEMA_VERSION and data["stackcert_version"] == __version__
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_jsonl_appends_survive_partial_writes(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    for i in range(3):
        append_jsonl(path, {"i": i, "path": tmp_path})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["i"] for line in lines] == [0, 1, 2]


def test_error_one_line_has_what_where_fix() -> None:
    err = ModelError("checksum mismatch", where="/m/model.safetensors", fix="run prepare --force")
    assert err.exit_code == ExitCode.USAGE
    line = err.one_line()
    assert "\n" not in line
    assert line == "checksum mismatch (at /m/model.safetensors) — fix: run prepare --force"
