"""FlagTree selection by vendor, Python, arch, glibc and the installed torch's Triton ABI; "no build
for this combination" with the nearest builds otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.env.vendors import VENDORS
from stackcert.errors import ConfigError
from stackcert.install.wheels import Target, WheelRow, WheelTable, load_wheel_table, select_wheel

TABLE = load_wheel_table()


def _t(**kw: object) -> Target:
    base: dict[str, object] = {
        "vendor": "nvidia",
        "python": "3.12.3",
        "arch": "x86_64",
        "glibc": "2.39",
        "torch": "2.10.0+cu128",
    }
    base.update(kw)
    return Target.model_validate(base)


def _pick(**kw: object) -> str | None:
    chosen = select_wheel(TABLE, _t(**kw)).chosen
    return chosen.version if chosen else None


def test_nvidia_follows_the_installed_torch() -> None:
    assert _pick() == "0.7.0"  # torch 2.10 -> Triton 3.6
    assert _pick(torch="2.9.1") == "0.4.0+3.5"
    assert _pick(torch="2.7.1", python="3.11.7", glibc="2.35") == "0.4.0+3.3"
    assert _pick(torch="2.6.0+cu124", python="3.10.12", glibc="2.31") == "0.4.0+3.2"
    assert _pick(torch="2.5.1") == "0.4.0"


def test_current_torch_rejects_old_triton_lines_with_the_reason() -> None:
    choice = select_wheel(TABLE, _t(torch="2.9.0", python="3.11.7", glibc="2.36"))
    assert choice.chosen is None
    text = choice.explain()
    assert text.startswith("no flagtree build for this combination; nearest builds:")
    # The build torch wants comes first, with what the host lacks for it.
    assert choice.nearest[0].row.startswith("flagtree 0.4.0+3.5")
    assert "Python 3.12, host has 3.11" in choice.nearest[0].reasons
    assert "needs glibc >= 2.39, host has 2.36" in choice.nearest[0].reasons
    assert "Triton 3.3 ABI, torch 2.9.0 needs Triton 3.5" in text


def test_torch_newer_than_the_map_is_no_build() -> None:
    choice = select_wheel(TABLE, _t(torch="2.13.0"))
    assert choice.chosen is None
    assert "torch 2.13 is not in the table's torch->Triton map" in choice.explain()


def test_iluvatar_36_needs_glibc_238_on_ubuntu_2204() -> None:
    # The known case: 0.7.0rc2+iluvatar3.6 needs GLIBC_2.38, the vendor's Ubuntu 22.04 image has 2.35.
    target = {"vendor": "iluvatar", "torch": "2.10.0+corex.4.5.0", "glibc": "2.35"}
    choice = select_wheel(TABLE, _t(**target))
    assert choice.chosen is None
    reasons = {r.row: r.reasons for r in choice.rejected}
    assert reasons["flagtree 0.7.0rc2+iluvatar3.6 (py3.12)"] == ["needs glibc >= 2.38, host has 2.35"]
    assert all("iluvatar3.6" in r.row for r in choice.nearest)  # what torch 2.10 wants, first
    # With glibc 2.38 the measured-need build fits; with 2.39 the 0.7.0 release does.
    assert _pick(**{**target, "glibc": "2.38"}) == "0.6.1+iluvatar3.6"
    assert _pick(**{**target, "glibc": "2.39"}) == "0.7.0+iluvatar3.6"
    # Python 3.10 on the same image: the Triton 3.1 build for py3.10 (vendor torch builds: a preference).
    old = select_wheel(TABLE, _t(**{**target, "python": "3.10.12", "torch": "2.7.1+corex.4.4.0"}))
    assert old.chosen and old.chosen.version == "0.5.1+iluvatar3.1" and old.chosen.python == ["3.10"]


def test_vendor_torch_prefers_the_closest_triton_line_below() -> None:
    # Moore Threads torch 2.7.1 (upstream Triton 3.3): the 3.2 build, as the vendor image pairs them.
    choice = select_wheel(TABLE, _t(vendor="mthreads", python="3.10.12", glibc="2.35", torch="2.7.1"))
    assert choice.chosen and choice.chosen.version == "0.5.1+mthreads3.2"
    assert any("chose Triton 3.2" in n for n in choice.notes)
    assert _pick(vendor="mthreads", python="3.10.12", glibc="2.35", torch="2.10.0") == "0.7.0+mthreads3.6"


def test_unreadable_glibc_and_missing_torch_are_explained() -> None:
    choice = select_wheel(TABLE, _t(glibc=None))
    assert choice.chosen is None
    assert "host glibc could not be read" in choice.explain()
    assert any("glibc unknown" in n for n in choice.notes)
    none = select_wheel(TABLE, _t(torch=None))
    assert "torch is not installed" in none.explain()


def test_cpu_host_and_vendor_without_wheels() -> None:
    cpu = select_wheel(TABLE, _t(vendor=None))
    assert cpu.chosen is None and "no accelerator vendor on this host" in cpu.explain()
    mlu = select_wheel(TABLE, _t(vendor="cambricon"))
    assert mlu.chosen is None and "publishes no wheel for vendor 'cambricon'" in mlu.explain()


def test_every_flagos_vendor_with_a_backend_has_current_rows() -> None:
    vendors = {r.vendor for r in TABLE.rows}
    for v in VENDORS:
        if v.flagtree_backend and v.key != "cambricon":
            assert v.key in vendors, v.key
            assert all(r.backend == v.flagtree_backend for r in TABLE.rows if r.vendor == v.key), v.key
    assert all(r.source in TABLE.sources for r in TABLE.rows)
    assert {"3.6"} <= {r.triton for r in TABLE.rows if r.vendor in ("sunrise", "ppu", "iluvatar")}


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
    assert choice.rejected[0].reasons == [
        "Python 3.99, host has 3.12",
        "arch riscv64, host is x86_64",
        "built for torch >=99 (Triton 9.9 ABI), host has 2.10.0+cu128",
    ]
    assert "no row for package 'flag_gems'" in select_wheel(table, _t(), package="flag_gems").explain()


def test_bad_table_file_names_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "wheels.yaml"
    path.write_text("rows:\n  - package: flagtree\n    version: '1'\n    vendr: nvidia\n")
    with pytest.raises(ConfigError) as exc:
        load_wheel_table(path)
    assert f"{path}:" in exc.value.one_line()
