"""The accelerator vendor registry: ONE data table (env/vendor_table.py), read by probe, install and run.

Each row says how to detect the vendor's devices (tool + parse strategy), which variable limits
the visible devices, which FlagCX make flag/adaptor and which FlagTree backend fit it, how vLLM is
built for it, and which runtime env and engine arguments vLLM needs on it. Every row cites its
sources; fields we could not confirm are listed in `uncertain` so nobody mistakes a guess for a fact.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stackcert.config import pick

ParseStrategy = Literal["csv", "regex", "json_cards"]


class ParseSpec(BaseModel):
    """How to turn a tool's output into devices. One named strategy plus its data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: ParseStrategy
    # csv: column order of each line (fields: index, name, memory_total_mib, driver_version)
    columns: tuple[str, ...] = ()
    # regex: one match per device, named groups index/name/memory_total_mib (MULTILINE);
    # an optional group device_id, when it matched, replaces index (e.g. npu-smi's Phy-ID)
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
    """One detection command: argv plus how to parse what it prints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: tuple[str, ...]
    parse: ParseSpec


class RuntimeSpec(BaseModel):
    """What vLLM needs on this vendor at run time, as the vendor row states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: tuple[tuple[str, str], ...] = Field((), description="variables set for every stack on the vendor")
    engine_args: tuple[tuple[str, Any], ...] = Field((), description="vLLM EngineArgs / LLM(...) keywords")
    notes: tuple[str, ...] = ()


class Vendor(BaseModel):
    """One accelerator vendor: detection, device selection, build flags and runtime settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    display: str
    detect: tuple[DetectCommand, ...]
    visible_devices_env: str
    torch_device: str | None = None
    flagcx_make_flag: str | None = Field(None, description="make variable set to 1 to build FlagCX")
    flagcx_adaptor: str | None = Field(None, description="FLAGCX_ADAPTOR of FlagCX's torch plugin")
    flagtree_backend: str | None = Field(None, description="FLAGTREE_BACKEND value / wheel tag")
    vllm_target_device: Literal["cuda", "empty"] = Field(
        "empty", description="VLLM_TARGET_DEVICE: 'cuda' = PyPI vLLM, 'empty' = source build for the plugin"
    )
    plugin_build_vendor: str | None = Field(
        None, description="VLLM_VENDOR when installing vllm-plugin-FL (builds vllm_fl._C), None = Python only"
    )
    runtime: RuntimeSpec = RuntimeSpec()
    install_notes: tuple[str, ...] = ()
    install_before: tuple[tuple[str, str], ...] = Field(
        (), description="(first, then): package pairs whose install order matters on this vendor"
    )
    sources: tuple[str, ...] = Field((), description="where the row's facts come from")
    uncertain: tuple[str, ...] = Field((), description="fields that are best guesses, not confirmed")


class VendorRuntime(BaseModel):
    """A vendor's runtime settings, ready to apply to a stack (what `vendor_runtime` returns)."""

    vendor: str | None
    env: dict[str, str] = Field(default_factory=dict, description="merge into the stack's env")
    engine_args: dict[str, Any] = Field(default_factory=dict, description="vLLM LLM(...)/EngineArgs keywords")
    cli_args: list[str] = Field(
        default_factory=list, description="the same engine args as `vllm serve` flags"
    )
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


def _cli(engine_args: dict[str, Any]) -> list[str]:
    """EngineArgs keywords as vLLM CLI flags: True -> --flag, dict -> JSON, other -> str."""
    out: list[str] = []
    for key, value in engine_args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, dict | list):
            out += [flag, json.dumps(value, sort_keys=True)]
        else:
            out += [flag, str(value)]
    return out


def vendor_runtime(vendor: str | Vendor | None) -> VendorRuntime:
    """The runtime env and engine arguments a vendor needs; empty for None/'cpu'. Unknown key: UsageError."""
    if vendor is None or (isinstance(vendor, str) and vendor.lower() in ("cpu", "none", "")):
        return VendorRuntime(vendor=None)
    row = vendor if isinstance(vendor, Vendor) else get_vendor(vendor)
    engine = dict(row.runtime.engine_args)
    return VendorRuntime(
        vendor=row.key,
        env=dict(row.runtime.env),
        engine_args=engine,
        cli_args=_cli(engine),
        notes=list(row.runtime.notes),
        sources=list(row.sources),
    )


def _table() -> dict[str, Vendor]:
    from stackcert.env.vendor_table import VENDOR_ROWS

    return {v.key: v for v in VENDOR_ROWS}


VENDOR_TABLE: dict[str, Vendor] = _table()
VENDORS: tuple[Vendor, ...] = tuple(VENDOR_TABLE.values())


def get_vendor(key: str, *, where: str = "--vendor") -> Vendor:
    """Look a vendor up by key (or an alias such as 'pingtouge'); a miss answers 'did you mean ...?'."""
    from stackcert.env.vendor_table import ALIASES

    name = key.strip().lower()
    return pick(ALIASES.get(name, name), VENDOR_TABLE, what="vendor", where=where)
