"""The accelerator vendor registry: ONE data table, read by the probe and by install.

Each row says how to detect the vendor's devices (tool + parse strategy), which variable limits
the visible devices, which FlagCX make flag/adaptor and which FlagTree backend fit it. Fields we
could not confirm from public sources are listed in `uncertain` so nobody mistakes a guess for a
fact.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stackcert.config import pick

ParseStrategy = Literal["csv", "regex", "json_cards"]


class ParseSpec(BaseModel):
    """How to turn a tool's output into devices. One named strategy plus its data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: ParseStrategy
    # csv: column order of each line (fields: index, name, memory_total_mib, driver_version)
    columns: tuple[str, ...] = ()
    # regex: one match per device, named groups index/name/memory_total_mib (MULTILINE)
    device_regex: str | None = None
    # regex/json_cards: driver version, group 'driver' (regex) or key path (json_cards)
    driver_regex: str | None = None
    # json_cards: top-level keys matching card_key_regex are devices
    card_key_regex: str = r"^card\d+$"
    name_keys: tuple[str, ...] = ()
    memory_keys: tuple[str, ...] = ()
    memory_scale: float = 1.0 / (1024 * 1024)  # bytes -> MiB
    driver_keys: tuple[str, ...] = ()


class DetectCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: tuple[str, ...]
    parse: ParseSpec


class Vendor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    display: str
    detect: tuple[DetectCommand, ...]
    visible_devices_env: str
    torch_device: str | None = None
    flagcx_make_flag: str | None = Field(None, description="make variable set to 1 to build FlagCX")
    flagcx_adaptor: str | None = Field(None, description="FlagCX device/CCL adaptor name")
    flagtree_backend: str | None = Field(None, description="FLAGTREE_BACKEND value")
    uncertain: tuple[str, ...] = Field((), description="fields that are best guesses, not confirmed")


# An nvidia-smi-like box table: "| 0  Name  | bus | ...|" then "| ... used / total MiB |".
_BOX = (
    r"^\|\s*(?P<index>\d+)\s+(?:/\s+)?(?P<name>[^|]*?)\s*\|[^\n]*\n"
    r"\|[^|\n]*\|\s*(?:\d+\s*MiB\s*/\s*)?(?P<memory_total_mib>\d+)\s*MiB"
)

VENDORS: tuple[Vendor, ...] = (
    Vendor(
        key="nvidia",
        display="NVIDIA",
        detect=(
            DetectCommand(
                argv=(
                    "nvidia-smi",
                    "--query-gpu=index,name,memory.total,driver_version",
                    "--format=csv,noheader,nounits",
                ),
                parse=ParseSpec(
                    strategy="csv", columns=("index", "name", "memory_total_mib", "driver_version")
                ),
            ),
        ),
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        torch_device="cuda",
        flagcx_make_flag="USE_NVIDIA",
        flagcx_adaptor="nccl",
        flagtree_backend="nvidia",
    ),
    Vendor(
        key="amd",
        display="AMD",
        detect=(
            DetectCommand(
                argv=(
                    "rocm-smi",
                    "--showproductname",
                    "--showmeminfo",
                    "vram",
                    "--showdriverversion",
                    "--json",
                ),
                parse=ParseSpec(
                    strategy="json_cards",
                    name_keys=("Card Series", "Card series", "Card model"),
                    memory_keys=("VRAM Total Memory (B)",),
                    driver_keys=("Driver version",),
                ),
            ),
        ),
        visible_devices_env="HIP_VISIBLE_DEVICES",
        torch_device="cuda",
        flagcx_make_flag="USE_AMD",
        flagcx_adaptor="rccl",
        flagtree_backend="amd",
    ),
    Vendor(
        key="ascend",
        display="Huawei Ascend",
        detect=(
            DetectCommand(
                argv=("npu-smi", "info"),
                parse=ParseSpec(
                    strategy="regex",
                    device_regex=(
                        r"^\|\s*(?P<index>\d+)\s+(?P<name>\S+)\s*\|\s*\w+\s*\|[^\n]*\n"
                        r"\|\s*\d+\s*\|\s*[0-9A-Fa-f:.]+\s*\|\s*\d+\s+\d+\s*/\s*\d+\s+\d+\s*/\s*"
                        r"(?P<memory_total_mib>\d+)"
                    ),
                    driver_regex=r"Version:\s*(?P<driver>\S+)",
                ),
            ),
        ),
        visible_devices_env="ASCEND_RT_VISIBLE_DEVICES",
        torch_device="npu",
        flagcx_make_flag="USE_ASCEND",
        flagcx_adaptor="hccl",
        flagtree_backend="ascend",
    ),
    Vendor(
        key="metax",
        display="MetaX",
        detect=(
            DetectCommand(
                argv=("mx-smi",),
                parse=ParseSpec(
                    strategy="regex",
                    device_regex=(
                        r"^\|\s*(?P<index>\d+)\s+(?P<name>[^|]*?)\s*\|[^\n]*\n"
                        r"\|[^|\n]*\|\s*\d+\s*/\s*(?P<memory_total_mib>\d+)\s*MiB"
                    ),
                    driver_regex=r"Kernel Mode Driver Version:\s*(?P<driver>\S+)",
                ),
            ),
        ),
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        torch_device="cuda",
        flagcx_make_flag="USE_METAX",
        flagcx_adaptor="mccl",
        flagtree_backend="metax",
        uncertain=("visible_devices_env (MACA_VISIBLE_DEVICES on some releases)", "flagcx_adaptor"),
    ),
    Vendor(
        key="iluvatar",
        display="Iluvatar CoreX",
        detect=(
            DetectCommand(
                argv=(
                    "ixsmi",
                    "--query-gpu=index,name,memory.total,driver_version",
                    "--format=csv,noheader,nounits",
                ),
                parse=ParseSpec(
                    strategy="csv", columns=("index", "name", "memory_total_mib", "driver_version")
                ),
            ),
        ),
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        torch_device="cuda",
        flagcx_make_flag="USE_ILUVATAR_COREX",
        flagcx_adaptor="ixccl",
        flagtree_backend="iluvatar",
        uncertain=("flagcx_adaptor",),
    ),
    Vendor(
        key="hygon",
        display="Hygon DCU",
        detect=(
            DetectCommand(
                argv=(
                    "hy-smi",
                    "--showproductname",
                    "--showmeminfo",
                    "vram",
                    "--showdriverversion",
                    "--json",
                ),
                parse=ParseSpec(
                    strategy="json_cards",
                    card_key_regex=r"^(card|HCU)\d+$",
                    name_keys=("Card Series", "Card series", "Card model"),
                    memory_keys=("VRAM Total Memory (B)", "vram Total Memory (B)"),
                    driver_keys=("Driver version",),
                ),
            ),
        ),
        visible_devices_env="HIP_VISIBLE_DEVICES",
        torch_device="cuda",
        flagcx_make_flag="USE_DU",
        flagcx_adaptor="rccl",
        flagtree_backend="hcu",
        uncertain=("detect (hy-smi JSON keys)", "flagcx_make_flag", "flagcx_adaptor"),
    ),
    Vendor(
        key="mthreads",
        display="Moore Threads",
        detect=(
            DetectCommand(
                argv=("mthreads-gmi",),
                parse=ParseSpec(
                    strategy="regex",
                    device_regex=(
                        r"^(?P<index>\d+)\s+(?P<name>[^|]*?)\s*\|[^|\n]*\|\S+\s+\d+MiB\((?P<memory_total_mib>\d+)MiB\)"
                    ),
                    driver_regex=r"Driver Version:\s*(?P<driver>\S+)",
                ),
            ),
        ),
        visible_devices_env="MUSA_VISIBLE_DEVICES",
        torch_device="musa",
        flagcx_make_flag="USE_MUSA",
        flagcx_adaptor="mccl",
        flagtree_backend="mthreads",
    ),
    Vendor(
        key="kunlunxin",
        display="Kunlunxin XPU",
        detect=(
            DetectCommand(
                argv=("xpu-smi",),
                parse=ParseSpec(
                    strategy="regex", device_regex=_BOX, driver_regex=r"Driver Version:\s*(?P<driver>\S+)"
                ),
            ),
        ),
        visible_devices_env="XPU_VISIBLE_DEVICES",
        torch_device="cuda",
        flagcx_make_flag="USE_KUNLUNXIN",
        flagcx_adaptor="xccl",
        flagtree_backend="xpu",
        uncertain=("torch_device (xpytorch exposes 'cuda')",),
    ),
    Vendor(
        key="cambricon",
        display="Cambricon MLU",
        detect=(
            DetectCommand(
                argv=("cnmon",),
                parse=ParseSpec(
                    strategy="regex",
                    device_regex=(
                        r"^\|\s*(?P<index>\d+)\s+/\s+(?P<name>\S+)[^|]*\|[^\n]*\n"
                        r"\|[^|\n]*\|\s*\d+\s*MiB\s*/\s*(?P<memory_total_mib>\d+)\s*MiB"
                    ),
                    driver_regex=r"Driver\s+v?(?P<driver>[\d.]+)",
                ),
            ),
        ),
        visible_devices_env="MLU_VISIBLE_DEVICES",
        torch_device="mlu",
        flagcx_make_flag="USE_CAMBRICON",
        flagcx_adaptor="cncl",
        flagtree_backend="cambricon",
    ),
    Vendor(
        key="enflame",
        display="Enflame GCU",
        detect=(
            DetectCommand(
                argv=("efsmi",),
                parse=ParseSpec(
                    strategy="regex",
                    device_regex=(
                        r"^\|\s*(?P<index>\d+)\s+(?P<name>.*?)\s+\S+\|[^\n]*\n"
                        r"\|\s*(?P<memory_total_mib>\d+)\s*MiB"
                    ),
                    driver_regex=r"Driver Ver:\s*(?P<driver>\S+)",
                ),
            ),
        ),
        visible_devices_env="TOPS_VISIBLE_DEVICES",
        torch_device="gcu",
        flagtree_backend="enflame",
        uncertain=("detect (efsmi table layout)", "flagcx support"),
    ),
    Vendor(
        key="biren",
        display="Biren",
        detect=(
            DetectCommand(
                argv=("brsmi",),
                parse=ParseSpec(
                    strategy="regex", device_regex=_BOX, driver_regex=r"Driver Version:\s*(?P<driver>\S+)"
                ),
            ),
        ),
        visible_devices_env="BIREN_VISIBLE_DEVICES",
        uncertain=("detect (brsmi table layout)", "visible_devices_env", "torch_device", "flagtree_backend"),
    ),
    Vendor(
        key="tsingmicro",
        display="Tsingmicro",
        detect=(
            DetectCommand(
                argv=("tsm_smi",),
                parse=ParseSpec(
                    strategy="regex", device_regex=_BOX, driver_regex=r"Driver Version:\s*(?P<driver>\S+)"
                ),
            ),
        ),
        visible_devices_env="TXDA_VISIBLE_DEVICES",
        flagtree_backend="tsingmicro",
        uncertain=("detect (tool name tsm_smi and its layout)", "visible_devices_env", "torch_device"),
    ),
)

VENDOR_TABLE: dict[str, Vendor] = {v.key: v for v in VENDORS}


def get_vendor(key: str, *, where: str = "--vendor") -> Vendor:
    """Look a vendor up by key; a miss answers 'did you mean ...?'."""
    return pick(key.lower(), VENDOR_TABLE, what="vendor", where=where)
