"""Engine-process operator selection: the environment the parent sets, the plugin in a (pretend)
engine process applying the real fault_ops library, and the read-back that compares it with the request."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackcert.config import OperatorSelection, StackSpec
from stackcert.engines import engine_ops, vllm_plugin
from stackcert.oplibs import fault_ops


def stack(**sel: object) -> StackSpec:
    return StackSpec(name="cand", engine="vllm", operators=OperatorSelection.model_validate(sel))


@pytest.fixture
def engine_core(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process pretends to be vLLM's EngineCore process (the name vLLM gives it)."""
    monkeypatch.setattr(multiprocessing.current_process(), "name", "EngineCore")
    monkeypatch.setattr(vllm_plugin, "_applied", False)
    yield
    fault_ops.disable()


def test_selection_env_stackcert_plugin(tmp_path: Path) -> None:
    env = engine_ops.selection_env(stack(library="fault_ops", exclude=["mm"]), {"PATH": "/bin"}, tmp_path)
    sel = OperatorSelection.model_validate_json(env[vllm_plugin.ENV_SELECTION])
    assert sel.library == "fault_ops" and sel.exclude == ["mm"]
    assert env[vllm_plugin.ENV_DIR] == str(tmp_path / "operators")
    assert "VLLM_PLUGINS" not in env  # unset: vLLM loads every plugin, ours included


@pytest.mark.parametrize(("allowed", "expected"), [("", "stackcert_ops"), ("fl", "fl,stackcert_ops")])
def test_selection_env_extends_plugin_allow_list(tmp_path: Path, allowed: str, expected: str) -> None:
    env = engine_ops.selection_env(stack(library="fault_ops"), {"VLLM_PLUGINS": allowed}, tmp_path)
    assert env["VLLM_PLUGINS"] == expected


def test_selection_env_without_operators_clears_stale_variables(tmp_path: Path) -> None:
    plain = StackSpec(name="ref", engine="vllm", env={"VLLM_PLUGINS": ""})
    env = engine_ops.selection_env(plain, {vllm_plugin.ENV_SELECTION: "{}", "VLLM_PLUGINS": ""}, tmp_path)
    assert vllm_plugin.ENV_SELECTION not in env and env["VLLM_PLUGINS"] == ""


def test_selection_env_via_vllm_fl_uses_the_plugins_own_switches(tmp_path: Path) -> None:
    env = engine_ops.selection_env(
        stack(library="flag_gems", via="vllm_fl", exclude=["mul", "rsqrt"]),
        {engine_ops.FL_WHITELIST: "stale"},
        tmp_path,
    )
    assert env[engine_ops.FL_BLACKLIST] == "mul,rsqrt"
    assert engine_ops.FL_WHITELIST not in env  # the plugin refuses both at once
    assert env[engine_ops.FL_OPLIST] == str(tmp_path / engine_ops.OPLIST_FILE)
    assert vllm_plugin.ENV_SELECTION not in env
    white = engine_ops.selection_env(
        stack(library="flag_gems", via="vllm_fl", include=["mm", "mul"], exclude=["mul"]), {}, tmp_path
    )
    assert white[engine_ops.FL_WHITELIST] == "mm" and engine_ops.FL_BLACKLIST not in white


@pytest.mark.parametrize(
    ("name", "multiproc", "expected"),
    [
        ("EngineCore", "1", True),
        ("EngineCore_DP0", "1", True),
        ("VllmWorker-0", "1", True),
        ("MainProcess", "1", False),  # the API server process
        ("MainProcess", "0", True),  # VLLM_ENABLE_V1_MULTIPROCESSING=0: the engine runs in it
        ("ApiServer_0", "1", False),
    ],
)
def test_runs_model(name: str, multiproc: str, expected: bool) -> None:
    assert vllm_plugin.runs_model(name, {"VLLM_ENABLE_V1_MULTIPROCESSING": multiproc}) is expected


def test_plugin_applies_in_engine_process_and_read_back_matches(
    engine_core: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = stack(library="fault_ops", exclude=["cumsum"])
    for key, value in engine_ops.selection_env(spec, {}, tmp_path).items():
        monkeypatch.setenv(key, value)
    vllm_plugin.register()
    assert fault_ops.active() == [op for op in fault_ops.ALL_OPS if op != "cumsum"]  # really registered
    ops = engine_ops.read_back(spec, tmp_path)
    assert ops is not None and ops.matches, ops
    assert ops.effective == fault_ops.active()
    assert ops.processes[0].process == "EngineCore"
    saved = json.loads((tmp_path / "effective_ops.json").read_text())
    assert saved["kind"] == "operators" and saved["problems"] == []


def test_plugin_does_nothing_in_the_api_server_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm_plugin, "_applied", False)
    spec = stack(library="fault_ops")
    for key, value in engine_ops.selection_env(spec, {}, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    vllm_plugin.register()  # pytest runs in MainProcess
    assert fault_ops.active() == []
    ops = engine_ops.read_back(spec, tmp_path)
    assert ops is not None and not ops.matches
    assert "no engine process applied" in ops.problems[0]


def test_plugin_records_and_raises_when_selection_cannot_apply(
    engine_core: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = stack(library="fault_ops", exclude=["not_an_op"])
    for key, value in engine_ops.selection_env(spec, {}, tmp_path).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(Exception, match="not_an_op"):
        vllm_plugin.register()
    ops = engine_ops.read_back(spec, tmp_path)
    assert ops is not None and not ops.matches
    assert "could not apply it" in ops.problems[0]


def test_read_back_flags_an_excluded_operator_that_was_registered(tmp_path: Path) -> None:
    """The upstream failure mode: a blacklist lost on the way to the engine process."""
    folder = tmp_path / "operators"
    folder.mkdir()
    record = {"pid": 7, "process": "EngineCore", "ok": True, "effective": ["add", "mul"]}
    (folder / "engine-ops-7.json").write_text(json.dumps(record))
    ops = engine_ops.read_back(stack(library="fault_ops", exclude=["mul"]), tmp_path)
    assert ops is not None and not ops.matches
    assert "mul" in ops.problems[0]


def test_read_back_prefers_worker_processes(tmp_path: Path) -> None:
    folder = tmp_path / "operators"
    folder.mkdir()
    for pid, name, eff in ((1, "EngineCore", ["add"]), (2, "VllmWorker-0", ["add", "mm"])):
        rec = {"pid": pid, "process": name, "ok": True, "effective": eff}
        (folder / f"engine-ops-{pid}.json").write_text(json.dumps(rec))
    ops = engine_ops.read_back(stack(library="fault_ops"), tmp_path, write=False)
    assert ops is not None and ops.effective == ["add", "mm"]


def test_read_back_via_vllm_fl_oplist(tmp_path: Path) -> None:
    spec = stack(library="flag_gems", via="vllm_fl", exclude=["mul"])
    missing = engine_ops.read_back(spec, tmp_path)
    assert missing is not None and "wrote no FlagGems operator list" in missing.problems[0]
    # FlagGems' record file logs the operators that ran, one module path a line (format as observed
    # in published runs; no vllm-plugin-FL ran here)
    (tmp_path / engine_ops.OPLIST_FILE).write_text(
        "[DEBUG] flag_gems.ops.add: GEMS ADD\n[DEBUG] flag_gems.ops.mul: GEMS MUL\n"
    )
    ops = engine_ops.read_back(spec, tmp_path)
    assert ops is not None and ops.effective == ["add", "mul"] and not ops.matches


def test_parse_oplist_forms() -> None:
    text = "mm\nflag_gems.runtime.backend._nvidia.hopper.ops.mul: x\n\n[INFO] flag_gems.fused.rms_norm\n"
    assert engine_ops.parse_oplist(text) == ["mm", "mul", "rms_norm"]
