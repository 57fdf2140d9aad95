"""The vendor registry's parse strategies against the vendor tool fixtures (see fixtures/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.env.accel import ParseError, parse_output
from stackcert.env.vendors import VENDOR_TABLE, VENDORS, get_vendor
from stackcert.errors import UsageError

FIX = Path(__file__).parent / "fixtures"

CASES = [
    # vendor, fixture, count, name, memory MiB, driver
    ("nvidia", "nvidia-smi_8xH100.csv", 8, "NVIDIA H100 80GB HBM3", 81559, "550.54.15"),
    ("iluvatar", "ixsmi_4xBI-V150.csv", 4, "Iluvatar BI-V150", 32768, "4.1.0"),
    ("amd", "rocm-smi_8xMI300X.json", 8, "AMD Instinct MI300X OAM", 196288, "6.7.0"),
    ("hygon", "hy-smi_2xK100.json", 2, "K100_AI", 65520, "6.3.8-V1.5.2"),
    ("ascend", "npu-smi_info_8x910B3.txt", 8, "910B3", 65536, "24.1.rc2"),
    ("metax", "mx-smi_2xC500.txt", 2, "MetaX C500", 65536, "2.12.13"),
    ("mthreads", "mthreads-gmi_2xS4000.txt", 2, "MTT S4000", 49152, "2.7.0"),
    ("kunlunxin", "xpu-smi_2xP800.txt", 2, "P800 OAM", 98304, "5.0.21.21"),
    ("cambricon", "cnmon_2xMLU370.txt", 2, "MLU370-X8", 24576, "5.10.29"),
    ("enflame", "efsmi_1xS60.txt", 1, "Enflame S60", 49152, "1.2.3.4"),
]


@pytest.mark.parametrize(("vendor", "fixture", "count", "name", "mem", "driver"), CASES)
def test_parse_fixture(vendor: str, fixture: str, count: int, name: str, mem: int, driver: str) -> None:
    spec = VENDOR_TABLE[vendor].detect[0].parse
    parsed = parse_output(spec, (FIX / fixture).read_text())
    assert len(parsed.devices) == count
    assert [d.index for d in parsed.devices] == list(range(count))
    assert {d.name for d in parsed.devices} == {name}
    assert {d.memory_total_mib for d in parsed.devices} == {mem}
    assert parsed.driver_version == driver


@pytest.mark.parametrize("vendor", [v.key for v in VENDORS])
def test_garbage_is_a_parse_error(vendor: str) -> None:
    spec = VENDOR_TABLE[vendor].detect[0].parse
    with pytest.raises(ParseError):
        parse_output(spec, "Segmentation fault\n\x00\x01 nothing here {")


def test_csv_with_wrong_column_count_is_a_parse_error() -> None:
    spec = VENDOR_TABLE["nvidia"].detect[0].parse
    with pytest.raises(ParseError, match="CSV columns"):
        parse_output(spec, "0, NVIDIA H100\n")


def test_registry_covers_the_vendors_with_required_fields() -> None:
    keys = {v.key for v in VENDORS}
    assert keys == {
        "nvidia",
        "amd",
        "ascend",
        "metax",
        "iluvatar",
        "hygon",
        "mthreads",
        "kunlunxin",
        "cambricon",
        "enflame",
        "biren",
        "tsingmicro",
    }
    envs = {v.key: v.visible_devices_env for v in VENDORS}
    assert envs["nvidia"] == "CUDA_VISIBLE_DEVICES"
    assert envs["amd"] == "HIP_VISIBLE_DEVICES"
    assert envs["ascend"] == "ASCEND_RT_VISIBLE_DEVICES"
    for v in VENDORS:
        assert v.detect and v.detect[0].argv, v.key
        assert v.visible_devices_env.endswith("VISIBLE_DEVICES"), v.key
    # Rows the FlagCX makefile knows about carry a make flag.
    assert VENDOR_TABLE["iluvatar"].flagcx_make_flag == "USE_ILUVATAR_COREX"
    assert VENDOR_TABLE["kunlunxin"].flagtree_backend == "xpu"


def test_unknown_vendor_did_you_mean() -> None:
    with pytest.raises(UsageError) as exc:
        get_vendor("acsend")
    assert "did you mean 'ascend'" in exc.value.one_line()
    assert get_vendor("NVIDIA").key == "nvidia"
