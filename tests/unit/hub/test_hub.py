"""Models by ID: local hub cache first, download in a supervised child, one-line errors. Nothing is
downloaded: the caches are built in tmp, the failing download points at a closed local port."""

from __future__ import annotations

import socket
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hf_cache import TINY_FILES, add_snapshot
from huggingface_hub import scan_cache_dir
from pydantic import ValidationError

from stackcert import hub
from stackcert.config import ModelSpec
from stackcert.engines.process import Completed
from stackcert.errors import ExitCode, ModelError
from stackcert.models import resolve_model

REPO = "acme/tiny-model"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STACKCERT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("MODELSCOPE_OFFLINE", raising=False)


def _no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> Completed:
        raise AssertionError("a download was started although the cache holds the model")

    monkeypatch.setattr("stackcert.engines.process.run_command", refuse)


def test_cached_snapshot_resolves_without_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf"
    snap = add_snapshot(cache, REPO, TINY_FILES)
    assert [r.repo_id for r in scan_cache_dir(cache).repos] == [REPO]  # huggingface_hub reads our layout
    _no_download(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a cache hit needs no network at all
    ref = resolve_model(ModelSpec(source="hub", id=REPO, cache_dir=str(cache)))
    assert ref.path == snap.resolve()
    assert ref.served_name == REPO  # the ID, as vLLM announces a model given by ID
    assert ref.has_chat_template is True


def test_revision_selects_its_own_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "hf"
    main = add_snapshot(cache, REPO, TINY_FILES, commit="a" * 40)
    v1 = add_snapshot(cache, REPO, {**TINY_FILES, "extra.txt": b"v1"}, revision="v1", commit="b" * 40)
    _no_download(monkeypatch)
    assert hub.fetch_model(REPO, cache_dir=str(cache)) == main
    assert hub.fetch_model(REPO, revision="v1", cache_dir=str(cache)) == v1


def test_incomplete_snapshot_is_refused_by_the_checkpoint_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf"
    add_snapshot(cache, REPO, {k: v for k, v in TINY_FILES.items() if k != "model.safetensors"})
    _no_download(monkeypatch)
    with pytest.raises(ModelError, match="no weights") as err:
        resolve_model(ModelSpec(source="hub", id=REPO, cache_dir=str(cache)))
    assert f"model.id {REPO}" in err.value.one_line()


def test_offline_with_an_empty_cache_is_one_line_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real huggingface_hub answers the cache lookup; nothing is stubbed.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _no_download(monkeypatch)
    with pytest.raises(ModelError) as err:
        resolve_model(ModelSpec(source="hub", id=REPO, cache_dir=str(tmp_path / "empty")))
    line = err.value.one_line()
    assert "\n" not in line
    assert line.startswith(f"model '{REPO}' is not in the local huggingface cache and offline mode forbids")
    assert str(tmp_path / "empty") in line
    assert "fix: unset HF_HUB_OFFLINE" in line and "model.source: path" in line
    assert err.value.exit_code is ExitCode.USAGE


def test_malformed_id_is_one_line_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_download(monkeypatch)
    with pytest.raises(ModelError) as err:
        hub.fetch_model("a/b/c", cache_dir=str(tmp_path))
    line = err.value.one_line()
    assert line.startswith(
        "model.id 'a/b/c' is not a Hugging Face repository ID: Repo id must be in the form"
    )
    assert line.endswith("fix: give the ID as ORG/NAME, e.g. Qwen/Qwen3-0.6B")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_hub_gives_one_line_from_the_download_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real child process and the real huggingface_hub, pointed at a port where nothing listens.
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ModelError) as err:
        hub.fetch_model(REPO, cache_dir=str(tmp_path / "hf"), timeout_s=120)
    line = err.value.one_line()
    assert line.startswith(f"could not download '{REPO}' from huggingface: ")
    assert "\n" not in line and "Traceback" not in line
    assert "HF_ENDPOINT" in line  # the fix names the mirror variable
    logs = list((tmp_path / "home" / "logs").glob("download-acme--tiny-model-*.log"))
    assert len(logs) == 1


def test_miss_downloads_in_a_child_then_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf"
    calls: list[tuple[list[str], float]] = []
    left: list[Path] = []

    def child(argv: list[str], *, timeout: float, log_path: Path, **kw: Any) -> Completed:
        calls.append((list(argv), timeout))
        left.append(add_snapshot(cache, REPO, TINY_FILES, revision="v2"))  # what the child leaves behind
        return Completed(list(argv), 0, False, 0.1, log_path)

    monkeypatch.setattr("stackcert.engines.process.run_command", child)
    path = hub.fetch_model(REPO, revision="v2", cache_dir=str(cache))
    assert path == left[0]
    assert calls == [
        (
            [
                sys.executable,
                "-m",
                "stackcert.hub",
                "huggingface",
                REPO,
                "--revision",
                "v2",
                "--cache-dir",
                str(cache),
            ],
            600.0,
        )
    ]


def test_download_timeout_says_it_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(argv: list[str], *, timeout: float, log_path: Path, **kw: Any) -> Completed:
        return Completed(list(argv), None, True, timeout, log_path)

    monkeypatch.setattr("stackcert.engines.process.run_command", slow)
    with pytest.raises(ModelError, match="ran past 600s") as err:
        hub.fetch_model(REPO, cache_dir=str(tmp_path / "hf"))
    assert "resumes" in (err.value.fix or "")


def test_download_child_asks_the_hub_for_a_resumable_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def fake_snapshot_download(repo_id: str, **kwargs: Any) -> str:
        seen.append((repo_id, kwargs))
        return str(tmp_path / "snap")

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    code = hub.main(["huggingface", REPO, "--revision", "v3", "--cache-dir", str(tmp_path)])
    assert code == 0
    assert seen == [(REPO, {"revision": "v3", "cache_dir": str(tmp_path), "local_files_only": False})]
    assert capsys.readouterr().out.strip() == str(tmp_path / "snap")


def test_modelscope_missing_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "modelscope", None)  # import modelscope → ImportError
    with pytest.raises(ModelError) as err:
        resolve_model(ModelSpec(source="hub", id="Qwen/Qwen3-0.6B", hub="modelscope"))
    assert err.value.one_line() == (
        "model.hub 'modelscope' needs the modelscope package, which is not installed (at model.hub) "
        "— fix: pip install 'stackcert[hub]' (or: pip install modelscope)"
    )


def test_modelscope_cache_is_tried_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ms" / "Qwen" / "Qwen3-0.6B"
    folder.mkdir(parents=True)
    for name, data in TINY_FILES.items():
        (folder / name).write_bytes(data)
    calls: list[dict[str, Any]] = []

    def snapshot_download(model_id: str, **kwargs: Any) -> str:
        calls.append({"model_id": model_id, **kwargs})
        return str(folder)

    fake = types.ModuleType("modelscope")
    fake.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "modelscope", fake)
    _no_download(monkeypatch)
    ref = resolve_model(ModelSpec(source="hub", id="Qwen/Qwen3-0.6B", hub="modelscope", revision="master"))
    assert ref.path == folder.resolve()
    assert calls == [
        {"model_id": "Qwen/Qwen3-0.6B", "revision": "master", "cache_dir": None, "local_files_only": True}
    ]


def test_modelscope_miss_offline_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def snapshot_download(model_id: str, **kwargs: Any) -> str:
        raise ValueError("Cannot find the requested files in the cached path\nand more")

    fake = types.ModuleType("modelscope")
    fake.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "modelscope", fake)
    monkeypatch.setenv("MODELSCOPE_OFFLINE", "1")
    with pytest.raises(ModelError, match="not in the local modelscope cache"):
        hub.fetch_model("Qwen/Qwen3-0.6B", hub="modelscope", cache_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": "hub"}, "model.source 'hub' needs model.id"),
        ({"source": "path", "path": "/m", "id": "a/b"}, "need model.source: hub"),
        ({"source": "hub", "id": "a/b", "hub": "gitee"}, "'huggingface' or 'modelscope'"),
    ],
)
def test_hub_spec_is_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelSpec.model_validate(fields)
