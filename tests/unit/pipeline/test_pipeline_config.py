"""RunConfig: preset building and one-line config errors (key + line, exit 2 through the real CLI)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from stackcert.errors import ConfigError
from stackcert.runmodel.config import RunConfig, from_preset, load_run_config

GOOD = """\
name: mini
model:
  source: path
  path: /models/x
stacks:
  a: {name: a, engine: vllm, engine_args: {enforce_eager: true}}
  b: {name: b, engine: vllm}
reference: a
candidate: b
phases:
  bench: {profiles: [demo], options: {num_prompts: 4}}
gates: {perf_ratio: 0.7}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "stackcert"  # the installed console script, as users run it
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_good_config_loads(tmp_path: Path) -> None:
    cfg = load_run_config(_write(tmp_path, GOOD))
    assert (
        cfg.reference == "a"
        and cfg.gates.perf_ratio == 0.7
        and cfg.phases.bench.options.model_dump(exclude_none=True) == {"num_prompts": 4}
    )
    assert all(p.num_prompts == 4 for p in cfg.phases.bench.resolved())  # applied to every profile
    assert cfg.phases.smoke.options.offline is False  # one engine start per stack by default


@pytest.mark.parametrize(
    ("phase", "option", "key"),
    [
        ("smoke", "{offline: false, max_tokns: 8}", "phases.smoke.options.max_tokns"),
        ("consistency", "{sharegpt_txts: 4}", "phases.consistency.options.sharegpt_txts"),
        ("consistency", "{tokens: {max_tokens: 0}}", "phases.consistency.options.tokens.max_tokens"),
        ("bench", "{num_promts: 4}", "phases.bench.options.num_promts"),
    ],
    ids=["smoke-typo", "consistency-typo", "nested-range", "bench-typo"],
)
def test_phase_options_are_validated_when_the_config_loads(
    tmp_path: Path, phase: str, option: str, key: str
) -> None:
    text = GOOD.replace("phases:\n", f"phases:\n  {phase}: {{options: {option}}}\n")
    if phase == "bench":
        text = GOOD.replace("options: {num_prompts: 4}", f"options: {option}")
    with pytest.raises(ConfigError) as err:
        load_run_config(_write(tmp_path, text))
    assert key in err.value.one_line() and "run.yaml:" in (err.value.where or "")


def test_cpu_demo_sizes_only_for_cpu_engines() -> None:
    """The demo sizes and the low memory share are for CPU engines; a CUDA host keeps full sizes."""
    cpu = from_preset("gpu", cuda=False)
    gpu = from_preset("gpu", cuda=True)
    assert cpu.phases.consistency.options.sharegpt_texts == 4
    assert gpu.phases.consistency.options.sharegpt_texts == 8  # ConsistencyOptions' own default
    demo_cpu, demo_gpu = from_preset("demo", cuda=False), from_preset("demo", cuda=True)
    assert all(s.engine_args.get("gpu_memory_utilization") == 0.3 for s in demo_cpu.stacks.values())
    assert all("gpu_memory_utilization" not in s.engine_args for s in demo_gpu.stacks.values())


def test_demo_preset_builds_a_runconfig_with_low_memory_servers() -> None:
    cfg = from_preset("demo")
    assert isinstance(cfg, RunConfig) and (cfg.reference, cfg.candidate) == ("eager", "compiled")
    assert all(s.engine_args["gpu_memory_utilization"] <= 0.3 for s in cfg.stacks.values())


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        (
            GOOD.replace("gates: {perf_ratio: 0.7}", "gates: {perf_ratio: 0.7, colour: red}"),
            "gates.colour",
            12,
        ),
        (GOOD.replace("perf_ratio: 0.7", "perf_ratio: fast"), "gates.perf_ratio", 12),
        (
            "\n".join(
                line for line in GOOD.splitlines() if not line.startswith(("model", "  source", "  path"))
            ),
            "'model'",
            None,
        ),
    ],
    ids=["unknown-key", "wrong-type", "missing-model"],
)
def test_errors_name_key_and_line(tmp_path: Path, text: str, key: str, line: int | None) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert key in err.value.one_line()
    if line:
        assert err.value.where == f"{path}:{line}"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD + "colour: red\n", "unknown key 'colour'"),
        (GOOD.replace("perf_ratio: 0.7", "perf_ratio: fast"), "bad value for 'gates.perf_ratio'"),
        (GOOD.replace("model:\n  source: path\n  path: /models/x\n", ""), "missing required key 'model'"),
    ],
    ids=["unknown-key", "wrong-type", "missing-model"],
)
def test_cli_config_errors_are_one_line_and_exit_2(tmp_path: Path, text: str, needle: str) -> None:
    proc = _cli("run", "--config", str(_write(tmp_path, text)), "--run-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "run.yaml" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_targets_are_checked_at_load(tmp_path: Path) -> None:
    docker = load_run_config(_write(tmp_path, GOOD + "target: {kind: docker, container: c1}\n"))
    assert docker.target.kind == "docker" and docker.target.container == "c1"
    ssh = load_run_config(_write(tmp_path, GOOD + "target: {kind: ssh, host: 'me@box.lan:2222'}\n"))
    assert ssh.target.ssh_parts() == ("me", "box.lan", 2222)
    for bad, needle in [
        ("{kind: docker}", "needs target.container"),
        ("{kind: ssh}", "needs target.host"),
        ("{kind: ssh, host: 'me@box; rm -rf /'}", "is not user@host[:port]"),
        ("{kind: ssh, host: h, workdir: tmp}", "must be an absolute path"),
        ("{kind: local, hots: h}", "hots"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(needle)):
            load_run_config(_write(tmp_path, GOOD + f"target: {bad}\n"))


def test_a_missing_container_stops_the_run_in_one_line(tmp_path: Path) -> None:
    text = GOOD + "target: {kind: docker, container: stackcert-no-such-container}\n"
    proc = _cli("run", "--config", str(_write(tmp_path, text)), "--run-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    # Without a daemon the line says so; with one, the container is not found. Either way: one line.
    assert len(lines) == 1 and "docker" in lines[0] and "target" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_cli_needs_exactly_one_source(tmp_path: Path) -> None:
    proc = _cli("run")
    assert proc.returncode == 2 and "--preset" in proc.stderr
    proc = _cli("run", "--resume", str(tmp_path))
    assert proc.returncode == 2 and "config.json" in proc.stderr
