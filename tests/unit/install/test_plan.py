"""Plan building: sources, FlagCX make flag from the vendor registry, wheel table, network, offline."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from stackcert.env.network import NetworkConfig
from stackcert.env.probe import probe_host
from stackcert.env.vendors import get_vendor
from stackcert.errors import ConfigError, UsageError
from stackcert.install.apply import apply_plan
from stackcert.install.plan import PlanContext, build_plan
from stackcert.install.spec import (
    FLAGCX_HOME,
    GateRequirement,
    PackageSpec,
    Source,
    StackInstall,
    default_stack,
    load_install_config,
)
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
    vendor = get_vendor("nvidia")
    plan = build_plan(
        default_stack(vendor), _ctx(tmp_path, "nvidia", probe_network=False), load_wheel_table()
    )
    by = {p.name: p for p in plan.packages}
    assert list(by) == ["vllm", "flagtree", "flag_gems", "flagcx", "vllm_fl"]
    assert by["vllm"].source == "PyPI vllm==0.28.0"
    pip = by["vllm"].steps[0].argv
    assert pip[:4] == ["/opt/py/bin/python", "-m", "pip", "install"]
    assert pip[pip.index("--constraint") + 1] == str(tmp_path / "c.txt")
    flagtree = by["flagtree"]
    assert flagtree.skipped is None
    assert "flagtree===0.4.0+3.2" in flagtree.steps[0].argv  # torch 2.6 -> Triton 3.2
    assert "--extra-index-url" in flagtree.steps[0].argv
    make = next(s for s in by["flagcx"].steps if s.kind == "build")
    assert make.argv == ["make", "USE_NVIDIA=1", "-j8"]
    assert make.cwd == FLAGCX_HOME and by["flagcx"].checkout == FLAGCX_HOME
    torch_plugin = by["flagcx"].steps[-1]
    assert torch_plugin.argv[-1] == f"{FLAGCX_HOME}/plugin/torch"
    assert torch_plugin.env["FLAGCX_ADAPTOR"] == "nvidia" and torch_plugin.env["USE_NVIDIA"] == "1"
    assert by["flagcx"].env == {"FLAGCX_PATH": FLAGCX_HOME}
    assert by["vllm_fl"].env == {"VLLM_PLUGINS": "fl"}
    assert by["vllm_fl"].steps[-1].env == {"VLLM_VENDOR": "cuda"}
    for name in ("flag_gems", "flagcx", "vllm_fl"):
        assert by[name].pinned and len(by[name].pinned or "") == 40, name
        assert not any("not pinned" in n for n in by[name].notes)


def test_flagcx_path_is_the_same_in_install_and_the_flagos_preset() -> None:
    from stackcert.config import load_preset

    full = load_preset("flagos").stacks["full"]
    assert full.env["FLAGCX_PATH"] == FLAGCX_HOME
    flagcx = next(p for p in default_stack(get_vendor("ascend")).packages if p.name == "flagcx")
    assert flagcx.source.dest == "{flagcx_home}" and flagcx.env == {"FLAGCX_PATH": "{src}"}


def test_network_chains_pick_the_mirror_and_rewrite_git(tmp_path: Path) -> None:
    from tests.unit.env.netserver import Handler, dead_url, serve

    with serve(Handler) as url:
        net = NetworkConfig(
            pypi=[f"{url}/forbidden/", f"{url}/simple/"],
            github=[dead_url("/"), f"{url}/captive/", f"{url}/gh/"],
        )
        ctx = _ctx(tmp_path, "mthreads", network=net, network_timeout=2.0)
        plan = build_plan(default_stack(get_vendor("mthreads")), ctx, load_wheel_table())
    assert plan.index_url == f"{url}/simple/" and plan.github_prefix == f"{url}/gh/"
    assert [(p.kind, p.reachable) for p in plan.network] == [
        ("pypi", False),
        ("pypi", True),
        ("github", False),
        ("github", False),
        ("github", True),
    ]
    clone = plan.packages[0].steps[0].argv
    assert clone[:3] == ["git", "-c", f"url.{url}/gh/.insteadOf=https://github.com/"]
    assert any("through the mirror" in n for n in plan.notes)


def test_github_unusable_stops_apply_with_a_fix(tmp_path: Path) -> None:
    from tests.unit.env.netserver import Handler, serve

    with serve(Handler) as url:
        net = NetworkConfig(pypi=[f"{url}/simple/"], github=[f"{url}/forbidden/"], proxy=None)
        plan = build_plan(
            default_stack(get_vendor("nvidia")), _ctx(tmp_path, "nvidia", network=net), load_wheel_table()
        )
    assert plan.github_prefix is None
    assert any("GitHub is not usable" in n and "--github-mirror" in n for n in plan.notes)
    with pytest.raises(UsageError) as exc:
        apply_plan(plan, run_dir=tmp_path / "run")
    assert "GitHub is not usable" in exc.value.what and "--github-mirror" in (exc.value.fix or "")


def test_proxy_goes_to_pip_and_git_and_tls_is_never_relaxed(tmp_path: Path) -> None:
    net = NetworkConfig(proxy="http://proxy.example:3128")
    plan = build_plan(
        default_stack(get_vendor("iluvatar")),
        _ctx(tmp_path, "iluvatar", torch="2.10.0+corex", network=net, probe_network=False),
        load_wheel_table(),
    )
    pip = plan.packages[2].steps[-1].argv  # flag_gems' pip install
    assert pip[pip.index("--proxy") + 1] == "http://proxy.example:3128"
    assert plan.packages[0].steps[0].env["https_proxy"] == "http://proxy.example:3128"
    assert "--trusted-host" not in plan.model_dump_json()


def test_cpu_host_skips_with_reasons(tmp_path: Path) -> None:
    plan = build_plan(
        default_stack(), _ctx(tmp_path, None, torch="2.13.0+cpu", probe_network=False), load_wheel_table()
    )
    by = {p.name: p for p in plan.packages}
    assert by["flagtree"].skipped and "no accelerator vendor on this host" in by["flagtree"].skipped
    assert by["flagcx"].skipped and "host without an accelerator" in by["flagcx"].skipped
    assert plan.runtime.vendor is None and plan.runtime.env == {}
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


def test_git_source_commit_is_recorded_in_install_json(tmp_path: Path) -> None:
    import json
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@e", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f.txt").write_text("x")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stack = StackInstall(
        packages=[
            PackageSpec(
                name="local",
                source=Source(kind="git", url=str(repo), tag="v1", commit=commit, pip_install=False),
                gate=GateRequirement(name="local", required=False),
            )
        ]
    )
    ctx = _ctx(tmp_path, None, probe_network=False).model_copy(update={"python": sys.executable})
    plan = build_plan(stack, ctx, load_wheel_table())
    assert plan.packages[0].pinned == commit and f"@{commit[:12]} (v1)" in plan.packages[0].source
    result = apply_plan(plan, run_dir=tmp_path / "run")
    data = json.loads((tmp_path / "run" / "install.json").read_text())
    (pkg,) = data["packages"]
    assert pkg["status"] == "pass" and pkg["pinned"] == commit and pkg["commit"] == commit
    assert result.packages[0].commit == commit


def test_ascend_order_rule_flagtree_before_flaggems(tmp_path: Path) -> None:
    stack = default_stack(get_vendor("ascend"))
    swapped = StackInstall(packages=[stack.packages[0], stack.packages[2], stack.packages[1]])
    plan = build_plan(swapped, _ctx(tmp_path, "ascend", probe_network=False), load_wheel_table())
    gems = next(p for p in plan.packages if p.name == "flag_gems")
    assert gems.skipped and "flagtree must be installed before flag_gems" in gems.skipped


def test_offline_without_the_wheel_skips_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "vllm-0.28.0-py3-none-any.whl").write_bytes(b"")
    plan = build_plan(
        default_stack(get_vendor("nvidia")),
        _ctx(tmp_path, "nvidia", offline=True, wheel_dir=tmp_path),
        load_wheel_table(),
    )
    by = {p.name: p for p in plan.packages}
    assert by["vllm"].skipped is None
    assert by["flag_gems"].skipped == f"offline: no 'flag_gems' wheel in {tmp_path}"


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


def test_config_network_section_and_pins(tmp_path: Path) -> None:
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(
        "network:\n"
        "  pypi: [https://mirror.example/simple/]\n"
        "  github: [https://gh.example/github.com/]\n"
        "  proxy: http://proxy.example:3128\n"
        "packages:\n"
        "  - name: flagcx\n"
        "    source: {kind: git, url: https://github.com/flagos-ai/FlagCX.git, tag: v0.13.0,\n"
        "             submodules: true, pip_subdir: plugin/torch}\n"
    )
    stack = load_install_config(cfg)
    assert stack.network is not None and stack.network.github_chain() == ["https://gh.example/github.com/"]
    ctx = _ctx(tmp_path, "nvidia", probe_network=False, network=stack.network)
    plan = build_plan(stack, ctx, load_wheel_table())
    (pkg,) = plan.packages
    assert pkg.pinned == "v0.13.0" and plan.index_url == "https://mirror.example/simple/"
    assert [s.argv[-1] for s in pkg.steps[1:3]] == ["v0.13.0", "--recursive"]
    cfg.write_text("network: {mirrors: []}\npackages: []\n")
    with pytest.raises(ConfigError, match=r"unknown key 'network\.mirrors'"):
        load_install_config(cfg)
