"""CampaignConfig: the matrix expands to validated RunConfigs; bad input is one line with its place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from stackcert.campaign.config import CampaignConfig, cells, deep_merge, expand, load_campaign
from stackcert.errors import ConfigError

INLINE = {
    "stacks": {
        "ref": {"name": "ref", "engine": "endpoint", "url": "http://127.0.0.1:9/v1"},
        "cand": {"name": "cand", "engine": "endpoint", "url": "http://127.0.0.1:10/v1"},
    },
    "reference": "ref",
    "candidate": "cand",
}


def _campaign(**extra: object) -> CampaignConfig:
    data = {
        "models": {"gemma": {"source": "demo"}, "local": {"source": "path", "path": "/m"}},
        "pairs": {"demo": {"preset": "demo"}, "ep": INLINE},
        "targets": {"a": {"kind": "local"}, "b": {"kind": "local"}},
        **extra,
    }
    return CampaignConfig.model_validate(data)


def test_matrix_crosses_models_pairs_targets_less_the_excluded() -> None:
    campaign = _campaign(matrix={"exclude": [{"model": "local", "pair": "ep", "target": "b"}]})
    ids = [e.id for e in expand(campaign)]
    assert len(ids) == 2 * 2 * 2 - 1 and len(set(ids)) == len(ids)
    assert ids[0] == "gemma__demo__a" and "local__ep__b" not in ids
    only = _campaign(matrix={"models": ["gemma"], "pairs": ["ep"]})
    assert [(k.model, k.pair, k.target) for k in cells(only)] == [("gemma", "ep", "a"), ("gemma", "ep", "b")]


def test_each_entry_is_an_ordinary_run_config_with_the_overrides_merged() -> None:
    campaign = _campaign(
        overrides={"gates": {"perf_ratio": 0.5}, "phases": {"bisect": {"enabled": False}}},
        pairs={
            "demo": {"preset": "demo", "overrides": {"gates": {"perf_ratio": 0.7}}},
            "ep": INLINE,
        },
    )
    entries = {e.id: e for e in expand(campaign)}
    demo = entries["local__demo__b"].config
    assert demo.model.path == "/m" and demo.name == "local__demo__b"
    assert demo.reference == "eager" and demo.gates.perf_ratio == 0.7  # the pair's override wins
    assert not demo.phases.bisect.enabled
    ep = entries["gemma__ep__a"].config
    assert ep.candidate_stack().url == "http://127.0.0.1:10/v1" and ep.gates.perf_ratio == 0.5


def test_resources_default_from_tp_and_pair_resources_win() -> None:
    stacks = {
        "ref": {"name": "ref", "tensor_parallel_size": 2},
        "cand": {"name": "cand", "tensor_parallel_size": 2, "pipeline_parallel_size": 2},
    }
    campaign = _campaign(
        pairs={
            "tp": {"stacks": stacks, "reference": "ref", "candidate": "cand"},
            "ep": {**INLINE, "resources": {"num_gpus": 1, "timeout_s": 60}},
        },
        resources={"num_cpus": 2, "timeout_s": 600},
    )
    entries = {e.pair: e for e in expand(campaign)}
    assert entries["tp"].num_gpus == 6 and entries["tp"].num_cpus == 2 and entries["tp"].timeout_s == 600
    assert entries["ep"].num_gpus == 1 and entries["ep"].timeout_s == 60


def test_a_run_config_file_pair_is_relative_to_the_campaign_file(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(
        "model: {source: demo}\nreference: r\ncandidate: c\nstacks:\n"
        "  r: {name: r, engine: endpoint, url: 'http://127.0.0.1:1/v1'}\n"
        "  c: {name: c, engine: endpoint, url: 'http://127.0.0.1:2/v1'}\n"
    )
    (tmp_path / "c.yaml").write_text("models: {m: {source: demo}}\npairs: {p: {config: run.yaml}}\n")
    (entry,) = expand(load_campaign(tmp_path / "c.yaml"))
    assert entry.id == "m__p__local" and entry.config.reference == "r"


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("models: {m: {source: demo}}\npairs: {p: {preset: demo}}\nbogus: 1\n", "bogus"),
        ("models: {m: {source: demo}}\npairs:\n  p: {preset: demo, colour: red}\n", "colour"),
        ("models: {m: {source: demo}}\npairs: {p: {}}\n", "needs 'preset'"),
        ("models: {m: {source: demo}}\npairs: {p: {preset: demo}}\nmatrix: {models: [x]}\n", "'x'"),
    ],
)
def test_bad_campaign_files_name_the_key_and_line(tmp_path: Path, text: str, wanted: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert wanted in err.value.one_line() and f"{path}:" in err.value.one_line()


def test_a_bad_override_names_the_run_and_the_key() -> None:
    campaign = _campaign(overrides={"phases": {"smoke": {"speed": 3}}})
    with pytest.raises(ConfigError, match=r"run gemma__demo__a: phases\.smoke\.speed"):
        expand(campaign)
    with pytest.raises(ValidationError, match=r"target\.kind docker needs target\.container"):
        _campaign(targets={"box": {"kind": "docker"}})


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "e": 3}) == {
        "a": {"b": 1, "c": [2]},
        "d": 1,
        "e": 3,
    }


def test_cli_bad_campaign_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models: {m: {source: demo}}\npairs: {p: {preset: demo}}\nmatrixx: {}\n")
    code = "import sys; from stackcert.cli import main; sys.argv[0] = 'stackcert'; main()"
    for args in (["campaign", str(path)], ["campaign"], ["campaign", "--resume", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "campaigns").exists()
