"""Operator libraries inside the engine process: apply a selection, report what is really active.

``apply`` runs *in the process that generates* (the transformers engine child, a bisect probe
worker). It registers the library's overrides and returns the operator set that the library itself
says it registered in this process — not the requested list — because a requested blacklist that
never reached the worker process is a known failure mode. With ``record_path`` the set is written
to a JSON file, so the parent can check what the child really ran with.

Libraries:
- ``flag_gems``: FlagGems (``flag_gems.enable(lib=..., unused=exclude)`` or
  ``flag_gems.only_enable(lib=..., include=...)``; names are FlagGems function names such as
  ``mm``, ``softmax``, ``rms_norm``; aten keys such as ``_softmax`` are accepted and mapped);
- ``fault_ops``: stackcert's TEST FIXTURE library (:mod:`stackcert.oplibs.fault_ops`).

Calling ``apply`` again replaces the earlier selection (each selection lives in its own
``torch.library.Library``, destroyed on the next call or by :func:`reset`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stackcert.config import OperatorSelection
from stackcert.errors import EngineError, UsageError
from stackcert.jsonio import envelope, write_json_atomic

_GEMS_LIB: Any = None


def _did_you_mean(names: Iterable[str], known: Iterable[str], *, library: str, what: str) -> None:
    table = sorted(set(known))
    for name in names:
        if name not in table:
            close = difflib.get_close_matches(name, table, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"{library} has: {', '.join(table[:40])} ..."
            raise UsageError(f"unknown {library} operator '{name}'", where=f"operators.{what}", fix=hint)


def known_operators(library: str) -> list[str]:
    """The operator names a library accepts in include / exclude."""
    if library == "fault_ops":
        from stackcert.oplibs import fault_ops

        return list(fault_ops.ALL_OPS)
    gems = _import_gems()
    return sorted(gems.FULL_CONFIG_BY_FUNC)


def _import_gems() -> Any:
    try:
        import flag_gems
    except Exception as exc:  # ImportError, or a driver / Triton failure during import
        raise EngineError(
            f"cannot import flag_gems: {type(exc).__name__}: {exc}",
            where="operators.library flag_gems",
            fix="install FlagGems (pip install flag-gems) on a host with a supported accelerator",
        ) from exc
    return flag_gems


def _gems_names(gems: Any, names: list[str], what: str) -> list[str]:
    """FlagGems excludes by function name; accept aten keys too and map them."""
    by_key: dict[str, str] = {}
    for func_name, items in gems.FULL_CONFIG_BY_FUNC.items():
        for item in items:
            by_key.setdefault(item[0], func_name)
    mapped = [by_key.get(n, n) if n not in gems.FULL_CONFIG_BY_FUNC else n for n in names]
    _did_you_mean(mapped, list(gems.FULL_CONFIG_BY_FUNC), library="flag_gems", what=what)
    return mapped


def _apply_gems(selection: OperatorSelection) -> list[str]:
    import torch

    global _GEMS_LIB
    gems = _import_gems()
    exclude = _gems_names(gems, list(selection.exclude), "exclude")
    reset()
    lib = torch.library.Library("aten", "IMPL")
    if selection.include is not None:
        include = [n for n in _gems_names(gems, list(selection.include), "include") if n not in set(exclude)]
        if include:
            gems.only_enable(lib=lib, include=include)
    else:
        gems.enable(lib=lib, unused=exclude)
    _GEMS_LIB = lib
    if selection.include is not None and not include:
        return []
    # What the registrar registered in this process, not what was asked for.
    return sorted(set(gems.all_registered_ops()))


def _apply_fault_ops(selection: OperatorSelection) -> list[str]:
    from stackcert.oplibs import fault_ops

    try:
        return fault_ops.enable(selection.include, selection.exclude, selection.faults)
    except fault_ops.FaultOpsError as exc:
        raise UsageError(str(exc), where="operators", fix="use names from fault_ops.ALL_OPS") from exc


def validate(selection: OperatorSelection) -> None:
    """Check operator names and faults without registering anything (UsageError with did-you-mean)."""
    if selection.faults and selection.library != "fault_ops":
        raise UsageError(
            "operator faults can only be planted with the fault_ops test library",
            where="operators.faults",
            fix="remove 'faults' or use library: fault_ops",
        )
    known = known_operators(selection.library)
    for what, names in (
        ("include", selection.include or []),
        ("exclude", selection.exclude),
        ("faults", list(selection.faults)),
    ):
        if selection.library == "flag_gems":
            gems = _import_gems()
            _gems_names(gems, list(names), what)
        else:
            _did_you_mean(names, known, library=selection.library, what=what)
    if selection.library == "fault_ops":
        from stackcert.oplibs import fault_ops

        for op, kind in selection.faults.items():
            try:
                fault_ops.parse_fault(kind)
            except fault_ops.FaultOpsError as exc:
                raise UsageError(
                    f"operator '{op}': {exc}",
                    where="operators.faults",
                    fix=f"choose one of {', '.join(fault_ops.FAULT_KINDS)} (drift:1e-3 sets a magnitude)",
                ) from None


def apply(selection: OperatorSelection, *, record_path: Path | None = None) -> list[str]:
    """Enable the selection in this process; return (and record) the effective operator set."""
    validate(selection)
    fault = selection.library == "fault_ops"
    effective = _apply_fault_ops(selection) if fault else _apply_gems(selection)
    if record_path is not None:
        record(selection, effective, record_path)
    return effective


def record(selection: OperatorSelection, effective: list[str], path: Path) -> None:
    """Write which operators were asked for and which are in effect in this process (JSON, atomic)."""
    payload = {
        "library": selection.library,
        "requested": selection.model_dump(),
        "effective": effective,
        "effective_count": len(effective),
        "pid": os.getpid(),
    }
    write_json_atomic(path, envelope("operators", payload))


def reset() -> None:
    """Remove every override this module registered in this process."""
    global _GEMS_LIB
    if _GEMS_LIB is not None:
        _GEMS_LIB._destroy()
        _GEMS_LIB = None
    import sys

    if "stackcert.oplibs.fault_ops" in sys.modules:
        sys.modules["stackcert.oplibs.fault_ops"].disable()
