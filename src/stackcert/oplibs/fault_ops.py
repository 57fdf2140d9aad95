"""TEST FIXTURE: a fake operator library that stands in for FlagGems where no GPU exists.

It overrides a few dozen aten operators on the CPU dispatch key, the way FlagGems overrides them
on CUDA (``torch.library.Library("aten", "IMPL")`` + ``lib.impl(key, fn, "CPU")``). Each override
calls the original CPU kernel (looked up with ``torch.library.get_kernel`` *before* the override is
registered and called boxed, so it never re-enters the dispatcher and cannot recurse), and can plant
one fault per operator:

- ``crash``: raise ``RuntimeError`` naming the operator, as a failing kernel would;
- ``nan``: return the output filled with NaN (floating outputs only);
- ``drift``: return the output times ``1 + 1e-2`` (floating outputs only), a subtle numeric error;
  ``drift:M`` sets the magnitude (``drift:1e-3`` … ``drift:1e-1``), so verdict-quality benchmarks can
  sweep it.

Operator names are short library names (like FlagGems' function names, e.g. ``mul``), each mapped
to one or more aten overloads. This is not a real operator library and never part of a real stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

FAULT_KINDS = ("crash", "nan", "drift")
DRIFT = 1e-2

# library operator name -> aten overloads it overrides. The set the demo Gemma-3 model uses under
# transformers (sdpa attention) plus a few it does not use (softmax, bmm, ...), as a real library has.
OPS: dict[str, tuple[str, ...]] = {
    "mm": ("mm",),
    "addmm": ("addmm",),
    "bmm": ("bmm",),
    "add": ("add.Tensor",),
    "sub": ("sub.Tensor",),
    "rsub": ("rsub.Scalar",),
    "mul": ("mul.Tensor",),
    "div": ("div.Tensor",),
    "neg": ("neg",),
    "rsqrt": ("rsqrt",),
    "pow": ("pow.Tensor_Scalar",),
    "mean": ("mean.dim",),
    "gelu": ("gelu",),
    "tanh": ("tanh",),
    "softmax": ("_softmax",),
    "exp": ("exp",),
    "sin": ("sin",),
    "cos": ("cos",),
    "embedding": ("embedding",),
    "cat": ("cat",),
    "index_select": ("index_select",),
    "where": ("where.self",),
    "masked_fill": ("masked_fill.Scalar",),
    "argmax": ("argmax",),
    "max": ("max",),
    "cumsum": ("cumsum",),
    "eq": ("eq.Scalar",),
    "isin": ("isin.Tensor_Tensor",),
    "sdpa": ("_scaled_dot_product_flash_attention_for_cpu",),
}
ALL_OPS: list[str] = sorted(OPS)

_LIB: torch.library.Library | None = None
_ACTIVE: list[str] = []
_ORIGINAL: dict[str, Any] = {}
_CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)


class FaultOpsError(ValueError):
    """A bad operator name or fault kind (callers turn it into a UsageError)."""


def _original(key: str) -> Any:
    # Taken before any override exists, so it is the real CPU (or composite) kernel.
    if key not in _ORIGINAL:
        _ORIGINAL[key] = torch.library.get_kernel(f"aten::{key}", "CPU")
    return _ORIGINAL[key]


def parse_fault(fault: str) -> tuple[str, float]:
    """``"drift:1e-3"`` → ("drift", 0.001); a kind without a magnitude gets the default drift."""
    kind, _, magnitude = fault.partition(":")
    if kind not in FAULT_KINDS:
        raise FaultOpsError(f"unknown fault '{fault}'; choose one of {FAULT_KINDS} (drift:M for a magnitude)")
    if not magnitude:
        return kind, DRIFT
    if kind != "drift":
        raise FaultOpsError(f"fault '{fault}': only drift takes a magnitude")
    try:
        value = float(magnitude)
    except ValueError:
        raise FaultOpsError(f"fault '{fault}': the magnitude must be a number, e.g. drift:1e-3") from None
    return kind, value


def _corrupt(out: Any, fault: str) -> Any:
    if isinstance(out, tuple):
        return tuple(_corrupt(o, fault) for o in out)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return out
    kind, magnitude = parse_fault(fault)
    # In place, with operators this library does not override, so corrupting cannot recurse.
    if kind == "nan":
        return out.fill_(float("nan"))
    return out.mul_(1.0 + magnitude)


def _tensor_positions(key: str) -> list[int]:
    packet, _, overload = key.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), overload or "default")._schema
    return [i for i, a in enumerate(schema.arguments) if str(a.type) == "Tensor" and not a.kwarg_only]


def _as_tensor(value: Any) -> Any:
    # Python kernels receive wrapped numbers (``x - 1``) as plain numbers; the boxed kernel wants a
    # tensor. A 0-dim tensor of the default dtype keeps the wrapped-number type promotion.
    if isinstance(value, bool):
        return torch.scalar_tensor(value, dtype=torch.bool)
    if isinstance(value, int):
        return torch.scalar_tensor(value, dtype=torch.int64)
    if isinstance(value, float):
        return torch.scalar_tensor(value, dtype=torch.get_default_dtype())
    return value


def _make(name: str, key: str, fault: str | None) -> Callable[..., Any]:
    kernel = _original(key)
    tensor_pos = _tensor_positions(key)

    def override(*args: Any, **kwargs: Any) -> Any:
        if fault is not None and fault.startswith("crash"):
            raise RuntimeError(f"fault_ops: planted kernel failure in operator '{name}' (aten::{key})")
        if tensor_pos:
            args = tuple(_as_tensor(a) if i in tensor_pos else a for i, a in enumerate(args))
        out = kernel.call_boxed(_CPU, *args, **kwargs)
        return out if fault is None else _corrupt(out, fault)

    override.__name__ = name
    return override


def check_names(names: Iterable[str], *, what: str) -> None:
    """Fail on the first name that is not a fault_ops operator, with a 'did you mean' hint."""
    import difflib

    for n in names:
        if n not in OPS:
            close = difflib.get_close_matches(n, ALL_OPS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see stackcert.oplibs.fault_ops.ALL_OPS"
            raise FaultOpsError(f"unknown fault_ops operator '{n}' in {what}; {hint}")


def enable(
    include: list[str] | None = None,
    exclude: Iterable[str] = (),
    faults: dict[str, str] | None = None,
) -> list[str]:
    """Register the overrides (replacing any earlier set); return the active operator names."""
    faults = dict(faults or {})
    exclude = list(exclude)
    check_names(include or [], what="include")
    check_names(exclude, what="exclude")
    check_names(faults, what="faults")
    for op, kind in faults.items():
        try:
            parse_fault(kind)
        except FaultOpsError as exc:
            raise FaultOpsError(f"operator '{op}': {exc}") from None
    disable()
    for keys in OPS.values():  # capture originals before anything is overridden
        for key in keys:
            _original(key)
    wanted = [n for n in (include if include is not None else ALL_OPS) if n not in set(exclude)]
    lib = torch.library.Library("aten", "IMPL")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding a previously registered kernel" is the point
        for name in wanted:
            for key in OPS[name]:
                lib.impl(key, _make(name, key, faults.get(name)), "CPU")
    global _LIB, _ACTIVE
    _LIB, _ACTIVE = lib, sorted(wanted)
    return list(_ACTIVE)


def disable() -> None:
    """Remove every override; the native kernels are used again."""
    global _LIB, _ACTIVE
    if _LIB is not None:
        _LIB._destroy()
    _LIB, _ACTIVE = None, []


def active() -> list[str]:
    """The operators overridden in this process right now."""
    return list(_ACTIVE)
