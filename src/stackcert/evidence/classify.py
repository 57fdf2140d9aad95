"""Where an error belongs: component (deepest known traceback frame), layer, category, operator."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stackcert.evidence.findings import Component, Layer

# Path fragment -> component. Checked in order; the first match of a frame wins.
_FRAME_COMPONENTS: list[tuple[str, Component]] = [
    ("stackcert/oplibs/fault_ops", Component.OPS_FIXTURE),
    ("/flag_gems/", Component.FLAG_GEMS),
    ("/flagtree/", Component.TRITON),
    ("/triton/", Component.TRITON),
    ("/flagcx/", Component.FLAGCX),
    ("/nccl", Component.FLAGCX),
    ("/vllm_fl/", Component.VLLM_PLUGIN_FL),
    ("/vllm/", Component.VLLM),
    ("/torch/", Component.TORCH),
    ("/transformers/", Component.TRANSFORMERS),
]

_COMPONENT_LAYER: dict[Component, Layer] = {
    Component.FLAG_GEMS: Layer.L3_KERNELS,
    Component.TRITON: Layer.L3_KERNELS,
    Component.OPS_FIXTURE: Layer.L3_KERNELS,
    Component.TORCH: Layer.L3_KERNELS,
    Component.FLAGCX: Layer.L4_COLLECTIVES,
    Component.MODEL: Layer.L2_MODEL,
    Component.TRANSFORMERS: Layer.L2_MODEL,
    Component.VLLM: Layer.L5_SERVING,
    Component.VLLM_PLUGIN_FL: Layer.L5_SERVING,
    Component.HOST: Layer.L0_HOST,
    Component.STACKCERT: Layer.L5_SERVING,
    Component.CLIENT: Layer.L5_SERVING,
    Component.UNKNOWN: Layer.L5_SERVING,
}


@dataclass(frozen=True)
class Rule:
    """A message pattern that fixes category and layer (and maybe the component)."""

    pattern: re.Pattern[str]
    category: str
    layer: Layer
    component: Component | None = None


def _r(regex: str, category: str, layer: Layer, component: Component | None = None) -> Rule:
    return Rule(re.compile(regex, re.I), category, layer, component)


# Order matters: the first rule that matches a message decides.
RULES: list[Rule] = [
    _r(
        r"Available memory on node .* less than desired", "insufficient_memory", Layer.L0_HOST, Component.HOST
    ),
    _r(
        r"out of memory|OutOfMemoryError|Cannot allocate memory|MemoryError|std::bad_alloc",
        "oom",
        Layer.L0_HOST,
    ),
    _r(
        r"Segmentation fault|core dumped|SIGSEGV|Fatal Python error|Illegal instruction|Bus error",
        "segfault",
        Layer.L0_HOST,
    ),
    _r(
        r"CUDA error|device-side assert|No CUDA GPUs|NVIDIA driver|cudaError|HIP error|NPU error|"
        r"device not found|ACL error",
        "device_error",
        Layer.L0_HOST,
        Component.HOST,
    ),
    _r(
        r"unrecognized arguments|invalid choice|error: argument|unexpected keyword argument",
        "bad_arg",
        Layer.L5_SERVING,
    ),
    _r(r"address already in use|Errno 98", "port_in_use", Layer.L5_SERVING, Component.HOST),
    _r(
        r"Invalid repository ID or local directory|does not appear to have a file named|"
        r"No such file or directory.*(config\.json|safetensors|tokenizer)|not a valid model|"
        r"Can't load (the )?(config|tokenizer)|model path does not exist",
        "model_missing",
        Layer.L2_MODEL,
        Component.MODEL,
    ),
    _r(r"fault_ops: planted kernel failure", "kernel_error", Layer.L3_KERNELS, Component.OPS_FIXTURE),
    _r(
        r"ModuleNotFoundError|ImportError|cannot import name|undefined symbol",
        "import_error",
        Layer.L1_PACKAGES,
    ),
    _r(r"nccl|flagcx|ProcessGroup|all_reduce|collective", "collective_error", Layer.L4_COLLECTIVES),
    _r(
        r"CompilationError|triton\.compiler|InductorError|BackendCompilerFailed|torch\._dynamo",
        "compile_error",
        Layer.L3_KERNELS,
    ),
    _r(r"\bnan\b|\binf\b.*(logits|probab)", "numerics", Layer.L6_NUMERICS),
]

# Operators named in errors: flag_gems.ops.rms_norm, aten::mm, torch.ops.aten.mm.default, fault_ops.mm
_OPERATOR_PATTERNS = [
    re.compile(r"\b(flag_gems\.(?:ops|fused)\.[A-Za-z_][\w]*)"),
    re.compile(r"\b(aten::[A-Za-z_][\w.]*)"),
    re.compile(r"\btorch\.ops\.aten\.([A-Za-z_]\w*)"),
    re.compile(r"/flag_gems/(?:ops|fused)/([A-Za-z_]\w*)\.py"),
]


def component_of_path(path: str, model_dirs: tuple[str, ...] = ()) -> Component | None:
    """The known package a source file belongs to, or None."""
    for d in model_dirs:
        if d and path.startswith(d.rstrip("/") + "/"):
            return Component.MODEL
    for fragment, comp in _FRAME_COMPONENTS:
        if fragment in path:
            return comp
    if "/stackcert/" in path:
        return Component.STACKCERT
    return None


def component_from_frames(paths: list[str], model_dirs: tuple[str, ...] = ()) -> Component | None:
    """The component of the DEEPEST frame (last in a Python traceback) that belongs to a known package."""
    for path in reversed(paths):
        comp = component_of_path(path, model_dirs)
        if comp is not None and comp is not Component.STACKCERT:
            return comp
    return None


def match_rule(text: str) -> Rule | None:
    """The first classification rule whose pattern matches the text, if any."""
    for rule in RULES:
        if rule.pattern.search(text):
            return rule
    return None


def extract_operator(text: str) -> str | None:
    """The operator an error names, e.g. `flag_gems.ops.rms_norm` or `aten::mm`."""
    for i, pattern in enumerate(_OPERATOR_PATTERNS):
        m = pattern.search(text)
        if m:
            name = m.group(1)
            if i == 2:
                return f"aten::{name}"
            if i == 3:
                return f"flag_gems.ops.{name}"
            return name
    return None


def layer_of(component: Component) -> Layer:
    """The layer a component belongs to (serving, L5, when it has none of its own)."""
    return _COMPONENT_LAYER.get(component, Layer.L5_SERVING)


def classify(
    text: str, frame_paths: list[str] | None = None, model_dirs: tuple[str, ...] = ()
) -> tuple[str, Layer, Component]:
    """(category, layer, component) of an error message and its traceback frames."""
    frame_comp = component_from_frames(frame_paths or [], model_dirs)
    rule = match_rule(text)
    if rule is not None:
        # A rule that names its component (host memory, the model's files, a port) is more precise
        # than the frame that happened to notice it.
        component = rule.component or frame_comp or Component.UNKNOWN
        layer = rule.layer
        if layer is Layer.L5_SERVING and frame_comp is not None and rule.category != "bad_arg":
            layer = layer_of(frame_comp)
        return rule.category, layer, component
    component = frame_comp or Component.UNKNOWN
    return "crash", layer_of(component), component
