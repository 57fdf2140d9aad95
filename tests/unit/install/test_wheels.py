"""Wheel selection by vendor, Python, arch, glibc and torch ABI — and the explanations when nothing fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.errors import ConfigError
from stackcert.install.wheels import Target, WheelRow, WheelTable, load_wheel_table, select_wheel


def _t(**kw: object) -> Target:
    base: dict[str, object] = {
        "vendor": "nvidia",
        "python": "3.11.7",
        "arch": "x86_64",
        "glibc": "2.36",
        "torch": "2.6.0+cu124",
    }
    base.update(kw)
    return Target.model_validate(base)


def test_packaged_table_picks_the_row_for_the_installed_torch() -> None:
    table = load_wheel_table()
    assert select_wheel(table, _t()).chosen.version == "0.3.0rc1+3.2"  # type: ignore[union-attr]
    assert select_wheel(table, _t(torch="2.7.1")).chosen.version == "0.3.0rc1+3.3"  # type: ignore[union-attr]
    ascend = select_wheel(table, _t(vendor="ascend", arch="aarch64", torch="2.5.1"))
    assert ascend.chosen and ascend.chosen.backend == "ascend"


def test_glibc_too_old_is_explained() -> None:
    table = load_wheel_table()
    choice = select_wheel(table, _t(vendor="mthreads", python="3.10.12", glibc="2.31"))
    assert choice.chosen is None
    text = choice.explain()
    assert "needs glibc >= 2.35, host has 2.31" in text
    assert "vendor nvidia, host has mthreads" in text


def test_unreadable_glibc_is_explained_not_crashed() -> None:
    choice = select_wheel(load_wheel_table(), _t(glibc=None))
    assert choice.chosen is None
    assert "host glibc could not be read" in choice.explain()
    assert any("glibc unknown" in n for n in choice.notes)


def test_torch_abi_mismatch_and_cpu_host() -> None:
    choice = select_wheel(load_wheel_table(), _t(vendor=None, torch="2.13.0+cpu"))
    assert choice.chosen is None
    text = choice.explain()
    assert "no accelerator vendor on this host" in text
    assert "built for torch >=2.6,<2.7 (Triton 3.2 ABI), host has 2.13.0+cpu" in text
    none = select_wheel(load_wheel_table(), _t(torch=None))
    assert "torch is not installed" in none.explain()


def test_a_row_that_matches_nothing() -> None:
    table = WheelTable(
        rows=[
            WheelRow(
                package="flagtree",
                version="9.9",
                vendor="nvidia",
                backend="nvidia",
                triton="9.9",
                python=["3.99"],
                arch=["riscv64"],
                torch=">=99",
            )
        ]
    )
    choice = select_wheel(table, _t())
    assert choice.chosen is None
    reasons = choice.rejected[0].reasons
    assert reasons == [
        "Python 3.99, host has 3.11",
        "arch riscv64, host is x86_64",
        "built for torch >=99 (Triton 9.9 ABI), host has 2.6.0+cu124",
    ]
    assert "no row for package 'flag_gems'" in select_wheel(table, _t(), package="flag_gems").explain()


def test_bad_table_file_names_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "wheels.yaml"
    path.write_text("rows:\n  - package: flagtree\n    version: '1'\n    vendr: nvidia\n")
    with pytest.raises(ConfigError) as exc:
        load_wheel_table(path)
    assert f"{path}:" in exc.value.one_line()
