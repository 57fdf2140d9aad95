"""A Finding is one located problem: step, phase, layer, component, category, signature, evidence."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Layer(StrEnum):
    """Where in the stack a problem sits, from L0 host and driver up to L6 numerics and output quality."""

    L0_HOST = "L0"  # host / driver / device
    L1_PACKAGES = "L1"  # packages / imports
    L2_MODEL = "L2"  # model config / weights
    L3_KERNELS = "L3"  # kernels / compiler (operator library, Triton)
    L4_COLLECTIVES = "L4"
    L5_SERVING = "L5"  # serving / API
    L6_NUMERICS = "L6"  # numerics / output quality


class Component(StrEnum):
    """The piece of software a problem is blamed on (FlagGems, Triton, vLLM, the model, the host...)."""

    FLAG_GEMS = "flag_gems"
    TRITON = "triton"  # triton or its FlagTree fork
    FLAGCX = "flagcx"  # flagcx or nccl
    VLLM_PLUGIN_FL = "vllm_fl"
    VLLM = "vllm"
    TORCH = "torch"
    TRANSFORMERS = "transformers"
    MODEL = "model"  # the model's own code, config or weights
    OPS_FIXTURE = "stackcert_fault_ops"  # the test fault-injection operator library (a fake)
    HOST = "host"
    STACKCERT = "stackcert"
    CLIENT = "client"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    """How bad a finding is: error, warning or info."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class LogExcerpt(BaseModel):
    """The lines of a log that show a problem, with the file and the number of the first line."""

    path: str | None = None
    first_line: int = Field(1, description="1-based line number of the first line in `lines`")
    lines: list[str] = Field(default_factory=list)


class Finding(BaseModel):
    """One located problem: step, phase, layer, component, category, signature, message and evidence."""

    step: str
    phase: str = ""
    layer: Layer = Layer.L5_SERVING
    component: Component = Component.UNKNOWN
    category: str = Field(..., description="short machine name: oom, import_error, stall, bad_arg, ...")
    severity: Severity = Severity.ERROR
    signature: str = Field("", description="normalised message: equal for two runs of the same error")
    message: str
    operator: str | None = Field(None, description="operator named by the error, when one is")
    excerpt: LogExcerpt | None = None

    def located(self) -> str:
        """One line: where and what."""
        where = "/".join(p for p in (self.step, self.phase) if p)
        return f"[{where} {self.layer.value} {self.component.value} {self.category}] {self.message}"
