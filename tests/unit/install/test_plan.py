"""Plan building: sources, FlagCX make flag from the vendor registry, wheel table, network, offline."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stackcert.env.probe import probe_host
from stackcert.env.vendors import get_vendor
from stackcert.errors import ConfigError, UsageError
from stackcert.install.apply import apply_plan
from stackcert.install.plan import PlanContext, build_plan
from stackcert.install.spec import PackageSpec, Source, StackInstall, default_stack, load_install_config
from stackcert.install.wheels import load_wheel_table


def _ctx(tmp_path: Path, vendor: str | None, torch: str = "2.6.0+cu124", **kw: object) -> PlanContext:
    host = probe_host(accelerators=False).model_copy(
        update={"python": "3.11.7", "arch": "x86_64", "glibc": "2.36"}
    )
    return PlanContext(
        host=host,
        vendor=get_vendor(vendor) if vendor else None,
        python="/opt/py/bin/python",
        protected={"torch": torch, "triton": "3.2.0"},
        constraints_file=tmp_path / "c.txt",
        work_dir=tmp_path,
        **kw,  # type: ignore[arg-type]
    )


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/simple/"


def test_default_stack_on_nvidia(tmp_path: Path) -> None:
    plan = build_plan(default_stack(), _ctx(tmp_path, "nvidia", probe_network=False), load_wheel_table())
    by = {p.name: p for p in plan.packages}
    assert list(by) == ["vllm", "flagtree", "flag_gems", "flagcx", "vllm_fl"]
    assert by["vllm"].source == "PyPI vllm"
    pip = by["vllm"].steps[0].argv
    assert pip[:4] == ["/opt/py/bin/python", "-m", "pip", "install"]
    assert pip[pip.index("--constraint") + 1] == str(tmp_path / "c.txt")
    flagtree = by["flagtree"]
    assert flagtree.skipped is None
    assert "flagtree==0.3.0rc1+3.2" in flagtree.steps[0].argv
    assert "--extra-index-url" in flagtree.steps[0].argv
    make = next(s for s in by["flagcx"].steps if s.kind == "build")
    assert make.argv == ["make", "USE_NVIDIA=1", "-j8"]
    assert make.cwd == str(tmp_path / "src" / "flagcx")
    assert by["flagcx"].env == {"FLAGCX_PATH": str(tmp_path / "src" / "flagcx")}
    assert by["vllm_fl"].env == {"VLLM_PLUGINS": "fl"}
    assert any("not pinned to a commit" in n for n in by["vllm_fl"].notes)


def test_cpu_host_skips_with_reasons(tmp_path: Path) -> None:
    plan = build_plan(
        default_stack(), _ctx(tmp_path, None, torch="2.13.0+cpu", probe_network=False), load_wheel_table()
    )
    by = {p.name: p for p in plan.packages}
    assert by["flagtree"].skipped and "no accelerator vendor on this host" in by["flagtree"].skipped
    assert by["flagcx"].skipped and "host without an accelerator" in by["flagcx"].skipped
    assert by["vllm"].skipped is None


def test_pinned_git_commit_is_checked_out(tmp_path: Path) -> None:
    stack = StackInstall(
        packages=[
            PackageSpec(
                name="flag_gems",
                source=Source(kind="git", url="https://example.invalid/FlagGems.git", commit="0123abc"),
            )
        ]
    )
    plan = build_plan(stack, _ctx(tmp_path, "ascend", probe_network=False), load_wheel_table())
    steps = plan.packages[0].steps
    assert steps[1].argv[-2:] == ["--detach", "0123abc"]
    assert plan.packages[0].notes == []


def test_offline_needs_a_wheel_dir(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        build_plan(default_stack(), _ctx(tmp_path, None, offline=True), load_wheel_table())
    assert "--wheel-dir" in exc.value.one_line()


def test_offline_plan_uses_only_local_wheels(tmp_path: Path) -> None:
    plan = build_plan(
        default_stack(), _ctx(tmp_path, None, offline=True, wheel_dir=tmp_path), load_wheel_table()
    )
    assert plan.network == []
    for pkg in plan.packages:
        for step in pkg.steps:
            assert step.kind == "pip"
            assert "--no-index" in step.argv and str(tmp_path) in step.argv
    assert "offline" in plan.packages[2].source


def test_unreachable_index_explains_offline_mode(tmp_path: Path) -> None:
    dead = _dead_url()
    stack = StackInstall(
        packages=[
            PackageSpec(name="sc_good", source=Source(kind="pypi", requirement="sc_good", indexes=[dead]))
        ]
    )
    plan = build_plan(stack, _ctx(tmp_path, None, network_timeout=1.0), load_wheel_table())
    assert plan.index_url is None
    assert [p.url for p in plan.network] == [dead] and not plan.network[0].reachable
    assert "--offline --wheel-dir DIR" in plan.notes[0]
    with pytest.raises(UsageError) as exc:
        apply_plan(plan, run_dir=tmp_path / "run")
    assert "no package index is reachable" in exc.value.what
    assert exc.value.fix and "--offline --wheel-dir" in exc.value.fix


def test_config_with_unknown_key_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "stack.yaml"
    cfg.write_text("packages:\n  - name: x\n    source: {kind: pypi, requirement: x}\n    biuld: []\n")
    with pytest.raises(ConfigError) as exc:
        load_install_config(cfg)
    assert "unknown key 'packages.0.biuld'" in exc.value.what and f"{cfg}:4" in (exc.value.where or "")
    cfg.write_text("packages:\n  - name: x\n    source: {kind: git}\n")
    with pytest.raises(ConfigError, match="needs 'url'"):
        load_install_config(cfg)


def test_requirements_for_preset_stacks() -> None:
    from stackcert.config import load_preset
    from stackcert.install.gate import requirements_for_stack

    flagos = load_preset("flagos")
    full = requirements_for_stack(flagos.stacks["full"])
    assert [(r.name, r.role) for r in full] == [
        ("vllm", "engine"),
        ("vllm_fl", "plugin"),
        ("flag_gems", "component"),
        ("flagcx", "component"),
    ]
    assert [r.name for r in requirements_for_stack(flagos.stacks["base"])] == ["vllm"]
