"""The vendor rows (data only). Sources are cited per row; docs/install.md lists them in full.

FlagCX make flags and FLAGCX_ADAPTOR names: FlagCX plugin/torch/_build_config.py at commit
0c721293a79348323afc874d7067b4fce0b06643 (ADAPTOR_MAP, ADAPTOR_TO_MAKE_FLAG and the tool each
platform is auto-detected by). FlagTree backends: FlagTree's wheel table (see install/wheels.yaml).
Runtime settings: vllm-plugin-FL's README and docs/usage/*.md and the FlagOS setup skill references.
"""

from __future__ import annotations

from typing import Any

from stackcert.env.vendors import DetectCommand, ParseSpec, RuntimeSpec, Vendor

FLAGCX = "github.com/flagos-ai/FlagCX@0c721293a793 plugin/torch/_build_config.py"
PLUGIN_README = "github.com/flagos-ai/vllm-plugin-FL@009b8fe9e85b README.md (vLLM 0.28.0, main)"
SKILL_NPU = "github.com/flagos-ai/skills@37268d673f22 skills/vllm-plugin-fl-setup-flagos/references/npu.md"
SKILL_ILU = "github.com/flagos-ai/skills skills/vllm-plugin-fl-setup-flagos/references/iluvatar_gpu.md"
SKILL_MT = (
    "github.com/flagos-ai/skills@37268d673f22 skills/vllm-plugin-fl-setup-flagos/references/mthreads_gpu.md"
)
ILU_GUIDE = "github.com/flagos-ai/vllm-plugin-FL@945515bb9644 docs/usage/iluvatar.md"
HYGON_GUIDE = "github.com/flagos-ai/vllm-plugin-FL@02874e163cc7 docs/usage/hygon.md"
THEAD_GUIDE = "github.com/flagos-ai/vllm-plugin-FL@0ffea49863a4 docs/usage/thead.md"
FLAGTREE = "github.com/flagos-ai/docs@897e9cf96ac5 docs/flagtree_en/getting_started/install.md"

# An nvidia-smi-like box table: "| 0  Name  | bus | ...|" then "| ... used / total MiB |".
_BOX = (
    r"^\|\s*(?P<index>\d+)\s+(?:/\s+)?(?P<name>[^|]*?)\s*\|[^\n]*\n"
    r"\|[^|\n]*\|\s*(?:\d+\s*MiB\s*/\s*)?(?P<memory_total_mib>\d+)\s*MiB"
)
_QUERY = ("--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader,nounits")
_CSV = ParseSpec(strategy="csv", columns=("index", "name", "memory_total_mib", "driver_version"))
_SMI_JSON = ("--showproductname", "--showmeminfo", "vram", "--showdriverversion", "--json")


def _box(tool: str) -> DetectCommand:
    return DetectCommand(
        argv=(tool,),
        parse=ParseSpec(
            strategy="regex", device_regex=_BOX, driver_regex=r"Driver Version:\s*(?P<driver>\S+)"
        ),
    )


def _flagos(key: str, *, docs: tuple[str, ...] = (), **fields: Any) -> Vendor:
    """A row whose FlagCX flag (USE_<KEY>), adaptor and FlagTree backend default to `key`."""
    # Its sources are FlagCX, `docs`, then FlagTree.
    defaults = {"flagcx_make_flag": f"USE_{key.upper()}", "flagcx_adaptor": key, "flagtree_backend": key}
    return Vendor(key=key, sources=(FLAGCX, *docs, FLAGTREE), **(defaults | fields))


_EAGER = (("enforce_eager", True),)

VENDOR_ROWS: tuple[Vendor, ...] = (
    _flagos(
        "nvidia",
        docs=(PLUGIN_README,),
        display="NVIDIA",
        detect=(DetectCommand(argv=("nvidia-smi", *_QUERY), parse=_CSV),),
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        torch_device="cuda",
        vllm_target_device="cuda",
        plugin_build_vendor="cuda",
        install_notes=("FlagTree replaces the standalone triton: uninstall triton first (FlagTree README)",),
    ),
    _flagos(
        "amd",
        docs=(PLUGIN_README,),
        display="AMD",
        detect=(
            DetectCommand(
                argv=("rocm-smi", *_SMI_JSON),
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
        plugin_build_vendor="cuda",
    ),
    _flagos(
        "ascend",
        docs=(SKILL_NPU, PLUGIN_README),
        display="Huawei Ascend",
        detect=(
            DetectCommand(
                argv=("npu-smi", "info"),
                parse=ParseSpec(
                    strategy="regex",
                    # "| NPU Name | Health | ..." then "| Chip [Phy-ID] | Bus-Id | ... used / total |":
                    # 910B prints the chip only, A3-class boards print chip and Phy-ID (the device id).
                    device_regex=(
                        r"^\|\s*(?P<index>\d+)\s+(?P<name>\S+)\s*\|\s*\w+\s*\|[^\n]*\n"
                        r"\|\s*\d+(?:\s+(?P<device_id>\d+))?\s*\|\s*[0-9A-Fa-f:.]+\s*\|"
                        r"[^\n]*/\s*(?P<memory_total_mib>\d+)\s*\|[ \t]*$"
                    ),
                    driver_regex=r"Version:\s*(?P<driver>\S+)",
                ),
            ),
        ),
        visible_devices_env="ASCEND_RT_VISIBLE_DEVICES",
        torch_device="npu",
        runtime=RuntimeSpec(
            env=(("TRITON_ALL_BLOCKS_PARALLEL", "1"),),
            engine_args=_EAGER,
            notes=("Ascend requires eager execution (--enforce-eager)",),
        ),
        install_notes=("FlagTree must be installed before FlagGems, or FlagGems' checks fail",),
        install_before=(("flagtree", "flag_gems"),),
    ),
    _flagos(
        "metax",
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
        uncertain=("visible_devices_env (MACA_VISIBLE_DEVICES on some releases)", "detect (mx-smi layout)"),
    ),
    _flagos(
        "iluvatar",
        docs=(SKILL_ILU, ILU_GUIDE),
        display="Iluvatar CoreX",
        detect=(DetectCommand(argv=("ixsmi", *_QUERY), parse=_CSV),),
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        torch_device="cuda",
        flagcx_make_flag="USE_ILUVATAR_COREX",
        flagcx_adaptor="iluvatar_corex",
        runtime=RuntimeSpec(
            env=(
                ("USE_ILUVATAR_COREX", "1"),
                ("FLAGCX_ADAPTOR", "iluvatar_corex"),
                ("GEMS_VENDOR", "iluvatar"),
                ("VLLM_ENGINE_ITERATION_TIMEOUT_S", "36000"),
                ("VLLM_RPC_TIMEOUT", "36000000"),
                ("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "3600"),
            ),
            engine_args=_EAGER,
            notes=(
                "eager per the FlagOS setup skill; the vLLM 0.28 guide runs graph mode instead with "
                "--compilation-config cudagraph_mode=PIECEWISE and short capture sizes",
                "operator whitelists (VLLM_FL_FLAGOS_WHITELIST=attention_backend,"
                "unquantized_fused_moe_method) belong to older plugin releases; plugin main loads "
                "vllm_fl/dispatch/config/iluvatar.yaml",
            ),
        ),
    ),
    _flagos(
        "hygon",
        docs=(HYGON_GUIDE,),
        display="Hygon DCU",
        detect=(
            DetectCommand(
                argv=("hy-smi", *_SMI_JSON),
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
        flagcx_adaptor="du",
        flagtree_backend="hcu",
        runtime=RuntimeSpec(
            env=(("GEMS_VENDOR", "hygon"), ("VLLM_USE_V2_MODEL_RUNNER", "0")),
            notes=("the validated Hygon stack uses vendor RCCL with FLAGCX_PATH unset",),
        ),
        uncertain=("detect (hy-smi JSON keys)",),
    ),
    _flagos(
        "mthreads",
        docs=(SKILL_MT,),
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
        flagcx_adaptor="musa",
        runtime=RuntimeSpec(
            env=(("USE_MUSA", "1"), ("FLAGCX_ADAPTOR", "musa"), ("VLLM_MUSA_ENABLE_MOE_TRITON", "1")),
            engine_args=(*_EAGER, ("block_size", 64), ("attention_config", {"backend": "TORCH_SDPA"})),
            notes=("first inference of some models is slow: Triton kernels compile",),
        ),
    ),
    _flagos(
        "kunlunxin",
        display="Kunlunxin XPU",
        detect=(_box("xpu-smi"),),
        visible_devices_env="XPU_VISIBLE_DEVICES",
        torch_device="cuda",
        flagcx_adaptor="klx",
        flagtree_backend="xpu",
        uncertain=("torch_device (xpytorch exposes 'cuda')",),
    ),
    _flagos(
        "cambricon",
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
        install_notes=("FlagTree publishes no cambricon wheel: build from its triton_v3.2.x branch",),
    ),
    _flagos(
        "enflame",
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
        uncertain=("detect (efsmi table layout)",),
    ),
    _flagos(
        "tsingmicro",
        display="Tsingmicro",
        detect=(_box("tsm_smi"),),
        visible_devices_env="TXDA_VISIBLE_DEVICES",
        flagcx_make_flag="USE_TSM",
        flagcx_adaptor="tsm",
        uncertain=("detect (tsm_smi layout)", "visible_devices_env", "torch_device"),
    ),
    _flagos(
        "sunrise",
        display="Sunrise",
        detect=(_box("pt-smi"),),
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        uncertain=("detect (pt-smi layout)", "visible_devices_env", "torch_device"),
    ),
    _flagos(
        "ppu",
        docs=(THEAD_GUIDE,),
        display="Pingtouge (T-Head) PPU",
        detect=(_box("ppu-smi"),),
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        torch_device="cuda",
        runtime=RuntimeSpec(
            env=(
                ("GEMS_VENDOR", "thead"),
                ("TORCH_DEVICE_BACKEND_AUTOLOAD", "1"),
                ("VLLM_WORKER_MULTIPROC_METHOD", "spawn"),
            ),
            notes=("ppu-smi lives in /usr/local/PPU_SDK/ppu-smi/bin (add it to PATH for detection)",),
        ),
        install_notes=(
            "install the plugin without VLLM_VENDOR=cuda: the CUDA build is not the validated one",
        ),
        uncertain=("detect (ppu-smi layout)",),
    ),
    Vendor(
        key="biren",
        display="Biren",
        detect=(_box("brsmi"),),
        visible_devices_env="BIREN_VISIBLE_DEVICES",
        uncertain=("detect (brsmi table layout)", "visible_devices_env", "torch_device", "flagtree_backend"),
    ),
)

ALIASES: dict[str, str] = {
    "pingtouge": "ppu",
    "thead": "ppu",
    "t-head": "ppu",
    "huawei": "ascend",
    "mt": "mthreads",
}
