"""The flagos preset on vllm-plugin-FL's real switches, and the isolation ladder walk in `run`.

The walk starts no real engine here: `launch_server` and the probe client are replaced by FAKES that
answer per level (a real vllm-plugin-FL cannot run on this CPU host); the decision code is real."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackcert.config import StackSpec, load_preset
from stackcert.diagnose import answers
from stackcert.engines import engine_ops
from stackcert.engines.base import ModelRef, ServerInfo
from stackcert.pipeline import analysis, ladder
from stackcert.pipeline.context import Outcome
from stackcert.pipeline.ladder import added_component, ladder_step, switches
from stackcert.pipeline.ledger import Ledger
from stackcert.pipeline.runner import PLAN, Pipeline
from stackcert.runmodel.config import from_preset
from stackcert.runmodel.results import ResolvedModel
from stackcert.status import Status

FLAGOS = load_preset("flagos")
SWITCHES = ["VLLM_FL_PREFER_ENABLED", "VLLM_FL_OOT_ENABLED", "USE_FLAGGEMS", "FLAGCX_PATH"]
INHERITED = {
    "HOME": "/root",
    "VLLM_PLUGINS": "fl",  # a host that sets it for everything: the reference must not inherit it
    "FLAGCX_PATH": "/x",
    "VLLM_FL_FLAGOS_BLACKLIST": "stale",
}
OFF = {"VLLM_FL_PREFER_ENABLED": "false", "VLLM_FL_OOT_ENABLED": "0", "USE_FLAGGEMS": "0"}
PINNED = {
    "base": {"HOME": "/root", "VLLM_PLUGINS": "", **OFF},
    "plugin": {"HOME": "/root", "VLLM_PLUGINS": "fl", **OFF},
    "plugin_dispatch": {"HOME": "/root", "VLLM_PLUGINS": "fl", **OFF, "VLLM_FL_PREFER_ENABLED": "true"},
    "plugin_oot": {
        "HOME": "/root",
        "VLLM_PLUGINS": "fl",
        "VLLM_FL_PREFER_ENABLED": "true",
        "VLLM_FL_OOT_ENABLED": "1",
        "USE_FLAGGEMS": "0",
    },
    "plugin_flaggems": {
        "HOME": "/root",
        "VLLM_PLUGINS": "fl",
        "VLLM_FL_PREFER_ENABLED": "true",
        "VLLM_FL_OOT_ENABLED": "1",
        "USE_FLAGGEMS": "1",
    },
    "full": {
        "HOME": "/root",
        "VLLM_PLUGINS": "fl",
        "VLLM_FL_PREFER_ENABLED": "true",
        "VLLM_FL_OOT_ENABLED": "1",
        "USE_FLAGGEMS": "1",
        "FLAGCX_PATH": "/opt/flagcx",
    },
}


@pytest.mark.parametrize("level", list(PINNED))
def test_each_level_environment_is_pinned(level: str) -> None:
    assert FLAGOS.stack(level).child_env(dict(INHERITED)) == PINNED[level]


def test_reference_does_not_load_vllm_fl() -> None:
    base = FLAGOS.stack(FLAGOS.reference)
    env = base.child_env(dict(INHERITED))
    # vLLM: VLLM_PLUGINS unset loads every installed plugin; "" is an allow-list matching none
    assert "VLLM_PLUGINS" in env and "fl" not in env["VLLM_PLUGINS"].split(",")
    assert base.operators is None and base.components == []


def test_each_level_flips_exactly_one_switch() -> None:
    stacks = [FLAGOS.stack(n) for n in FLAGOS.levels]
    assert FLAGOS.levels[0] == FLAGOS.reference and FLAGOS.levels[-1] == FLAGOS.candidate
    flipped = [switches(a, b) for a, b in itertools.pairwise(stacks)]
    assert [list(f) for f in flipped] == [["VLLM_PLUGINS"], *[[s] for s in SWITCHES]]
    assert flipped[0]["VLLM_PLUGINS"] == ("", "fl")
    comps = [added_component(a, b) for a, b in itertools.pairwise(stacks)]
    assert comps == ["vllm_fl", "vllm_fl", "vllm_fl", "flag_gems", "flagcx"]


def test_no_level_speaks_the_old_contract() -> None:
    for stack in FLAGOS.stacks.values():
        assert "VLLM_FL_DISPATCH" not in stack.env  # not a variable vllm-plugin-FL reads


def test_candidate_selection_goes_through_the_plugins_lists(tmp_path: Path) -> None:
    full = FLAGOS.stack("full")
    assert full.operators is not None and full.operators.via == "vllm_fl"
    probe = full.model_copy(update={"operators": full.operators.model_copy(update={"exclude": ["mul"]})})
    env = engine_ops.selection_env(probe, probe.child_env({}), tmp_path)
    assert env["VLLM_FL_FLAGOS_BLACKLIST"] == "mul" and env["VLLM_PLUGINS"] == "fl"
    assert "STACKCERT_OPERATORS" not in env  # the plugin applies FlagGems, not stackcert's plugin


# --- the walk ------------------------------------------------------------------------------------
REF = [answers.Answer(prompt="p", tokens=[1, 2], top=[{1: -0.1, 5: -3.0}, {2: -0.1}])]
BAD = [answers.Answer(prompt="p", tokens=[5, 2], top=[{5: -0.1, 1: -3.0}, {2: -0.1}])]


class FakeServer:
    """A FAKE server object: only what the ladder reads."""

    def __init__(self, stack: StackSpec) -> None:
        self.stack = stack
        self.served_model = "m"
        self.base_url = "http://fake"
        self.log_path = None
        self.info = ServerInfo(stack=stack.name, engine="vllm", base_url=self.base_url, served_model="m")


def _walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str) -> tuple[Pipeline, list[str]]:
    started: list[str] = []
    order = FLAGOS.levels

    @contextlib.contextmanager
    def fake_launch(stack: StackSpec, model: Any, **kw: Any) -> Iterator[FakeServer]:
        started.append(stack.name)
        yield FakeServer(stack)

    def fake_collect(server: FakeServer, prompts: Any = None, **kw: Any) -> list[answers.Answer]:
        return BAD if order.index(server.stack.name) >= order.index(broken) else REF

    monkeypatch.setattr("stackcert.pipeline.servers.launch_server", fake_launch)
    monkeypatch.setattr(answers, "collect", fake_collect)
    cfg = from_preset("flagos")
    pipe = Pipeline(cfg, Ledger.create(tmp_path, PLAN))
    for step in ("env", "install", "model", "reference.serve", "reference.smoke", "candidate.serve"):
        pipe.step(step, lambda: Outcome(status=Status.PASS), 5)
    pipe.step("candidate.smoke", lambda: Outcome(status=Status.FAIL, reason="wrong answer"), 5)
    model = ModelRef(path=tmp_path, served_name="m", tokenizer=tmp_path)
    pipe.ctx.results.model = ResolvedModel(model=model)
    monkeypatch.setattr(ladder, "kept_answers", lambda ctx: REF)
    assert pipe.step("ladder", lambda: ladder_step(pipe.ctx), 30) is Status.PASS
    return pipe, started


def test_walk_names_the_first_failing_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe, started = _walk(tmp_path, monkeypatch, broken="plugin_oot")
    assert started == ["plugin", "plugin_dispatch", "plugin_oot"]  # one start per level, stops there
    assert [s.stack for s in pipe.ledger.state.engine_starts] == started  # counted like every start
    walk = pipe.ctx.results.ladder
    assert walk is not None
    assert walk.failing_level == "plugin_oot" and walk.switch == {"VLLM_FL_OOT_ENABLED": ["0", "1"]}
    assert walk.component == "vllm_fl"
    assert walk.findings[0].component.value == "vllm_fl"
    why = analysis.bisect_reason(pipe.ctx)
    assert why is not None and "names vllm_fl" in why  # no operator bisection for the plugin's own ops


def test_walk_to_flaggems_hands_over_to_bisection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe, _ = _walk(tmp_path, monkeypatch, broken="plugin_flaggems")
    walk = pipe.ctx.results.ladder
    assert walk is not None and walk.component == "flag_gems" and walk.operator_library
    assert walk.findings[0].layer.value == "L3"
    assert analysis.bisect_reason(pipe.ctx) is None


def test_walk_blames_the_candidates_own_switch_when_all_levels_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe, started = _walk(tmp_path, monkeypatch, broken="full")
    assert started == ["plugin", "plugin_dispatch", "plugin_oot", "plugin_flaggems"]
    walk = pipe.ctx.results.ladder
    assert walk is not None and walk.failing_level == "full" and walk.component == "flagcx"


def test_no_walk_when_the_candidate_passes(tmp_path: Path) -> None:
    pipe = Pipeline(from_preset("flagos"), Ledger.create(tmp_path, PLAN))
    for step in ("reference.serve", "reference.smoke", "candidate.serve", "candidate.smoke"):
        pipe.step(step, lambda: Outcome(status=Status.PASS), 5)
    assert pipe.step("ladder", lambda: ladder_step(pipe.ctx), 5) is Status.SKIPPED
    assert pipe.ledger.get("ladder").reason == "not needed: the candidate does not fail"
