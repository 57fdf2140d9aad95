"""The vendor registry's parse strategies against the vendor tool fixtures (see fixtures/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.env.accel import ParseError, parse_output
from stackcert.env.vendors import VENDOR_TABLE, VENDORS, get_vendor, vendor_runtime
from stackcert.errors import UsageError

FIX = Path(__file__).parent / "fixtures"

CASES = [
    # vendor, fixture, count, name, memory MiB, driver
    ("nvidia", "nvidia-smi_8xH100.csv", 8, "NVIDIA H100 80GB HBM3", 81559, "550.54.15"),
    ("iluvatar", "ixsmi_4xBI-V150.csv", 4, "Iluvatar BI-V150", 32768, "4.1.0"),
    ("amd", "rocm-smi_8xMI300X.json", 8, "AMD Instinct MI300X OAM", 196288, "6.7.0"),
    ("hygon", "hy-smi_2xK100.json", 2, "K100_AI", 65520, "6.3.8-V1.5.2"),
    ("ascend", "npu-smi_info_8x910B3.txt", 8, "910B3", 65536, "24.1.rc2"),
    ("ascend", "npu-smi_info_2chip_Ascend910_real.txt", 2, "Ascend910", 65536, "26.0.rc2"),
    ("mthreads", "mthreads-gmi_3xS5000_real.txt", 3, "MTT S5000", 81920, "3.3.5-server"),
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
        "sunrise",
        "ppu",
    }
    envs = {v.key: v.visible_devices_env for v in VENDORS}
    assert envs["nvidia"] == "CUDA_VISIBLE_DEVICES"
    assert envs["amd"] == "HIP_VISIBLE_DEVICES"
    assert envs["ascend"] == "ASCEND_RT_VISIBLE_DEVICES"
    for v in VENDORS:
        assert v.detect and v.detect[0].argv, v.key
        assert v.visible_devices_env.endswith("VISIBLE_DEVICES"), v.key
    # Rows the FlagCX makefile knows about carry a make flag and the torch plugin's adaptor name.
    assert VENDOR_TABLE["iluvatar"].flagcx_make_flag == "USE_ILUVATAR_COREX"
    assert VENDOR_TABLE["kunlunxin"].flagtree_backend == "xpu"
    flagcx = {v.key: (v.flagcx_make_flag, v.flagcx_adaptor) for v in VENDORS if v.flagcx_adaptor}
    assert flagcx == {
        "nvidia": ("USE_NVIDIA", "nvidia"),
        "amd": ("USE_AMD", "amd"),
        "ascend": ("USE_ASCEND", "ascend"),
        "metax": ("USE_METAX", "metax"),
        "iluvatar": ("USE_ILUVATAR_COREX", "iluvatar_corex"),
        "hygon": ("USE_DU", "du"),
        "mthreads": ("USE_MUSA", "musa"),
        "kunlunxin": ("USE_KUNLUNXIN", "klx"),
        "cambricon": ("USE_CAMBRICON", "cambricon"),
        "enflame": ("USE_ENFLAME", "enflame"),
        "tsingmicro": ("USE_TSM", "tsm"),
        "sunrise": ("USE_SUNRISE", "sunrise"),
        "ppu": ("USE_PPU", "ppu"),
    }
    # Every FlagOS vendor row cites where its facts come from.
    assert all(v.sources for v in VENDORS if v.key != "biren")


def test_runtime_settings_per_vendor() -> None:
    ascend = vendor_runtime("ascend")
    assert ascend.env == {"TRITON_ALL_BLOCKS_PARALLEL": "1"}
    assert ascend.engine_args == {"enforce_eager": True} and ascend.cli_args == ["--enforce-eager"]
    ilu = vendor_runtime("iluvatar")
    assert ilu.env["USE_ILUVATAR_COREX"] == "1" and ilu.env["FLAGCX_ADAPTOR"] == "iluvatar_corex"
    assert int(ilu.env["VLLM_RPC_TIMEOUT"]) >= 3_600_000 and ilu.engine_args == {"enforce_eager": True}
    mt = vendor_runtime(get_vendor("mthreads"))
    assert mt.env == {"USE_MUSA": "1", "FLAGCX_ADAPTOR": "musa", "VLLM_MUSA_ENABLE_MOE_TRITON": "1"}
    assert mt.engine_args == {
        "enforce_eager": True,
        "block_size": 64,
        "attention_config": {"backend": "TORCH_SDPA"},
    }
    assert mt.cli_args == [
        "--enforce-eager",
        "--block-size",
        "64",
        "--attention-config",
        '{"backend": "TORCH_SDPA"}',
    ]
    assert mt.sources and all("github.com/" in s for s in mt.sources)
    nvidia = vendor_runtime("nvidia")
    assert nvidia.env == {} and nvidia.engine_args == {} and nvidia.vendor == "nvidia"
    assert vendor_runtime(None).vendor is None and vendor_runtime("cpu").env == {}
    # The ladder's own switches are never vendor settings (they would break the isolation ladder).
    switches = {
        "VLLM_PLUGINS",
        "USE_FLAGGEMS",
        "FLAGCX_PATH",
        "VLLM_FL_PREFER_ENABLED",
        "VLLM_FL_OOT_ENABLED",
    }
    for v in VENDORS:
        assert not switches & set(vendor_runtime(v).env), v.key


def test_aliases_and_unknown_runtime_vendor() -> None:
    assert get_vendor("Pingtouge").key == "ppu" and get_vendor("thead").key == "ppu"
    with pytest.raises(UsageError, match="unknown vendor 'sunrize'"):
        vendor_runtime("sunrize")


def test_unknown_vendor_did_you_mean() -> None:
    with pytest.raises(UsageError) as exc:
        get_vendor("acsend")
    assert "did you mean 'ascend'" in exc.value.one_line()
    assert get_vendor("NVIDIA").key == "nvidia"
