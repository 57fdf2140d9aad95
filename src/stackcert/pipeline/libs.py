"""Finding the step libraries. A library that is not installed yet makes its step `skipped` with the
reason "not available" — never a fake result. A library that exists but fails to import is a crash."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from pydantic import BaseModel, Field

from stackcert.evidence.findings import Finding
from stackcert.status import Status


class NotAvailable(Exception):
    """The library a step needs is not part of this installation."""


def lib(module: str, attr: str) -> Any:
    """`module.attr`, or NotAvailable when the module or the attribute does not exist."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        raise NotAvailable(f"{module} not available")
    mod = importlib.import_module(module)
    if not hasattr(mod, attr):
        raise NotAvailable(f"{module}.{attr} not available")
    return getattr(mod, attr)


def lib_first(*places: tuple[str, str]) -> Any:
    """The first of several (module, attr) places that exists (a package may not re-export yet)."""
    missing: list[str] = []
    for module, attr in places:
        try:
            return lib(module, attr)
        except NotAvailable as exc:
            missing.append(str(exc))
    raise NotAvailable(missing[0] if missing else "not available")


def has(module: str, attr: str) -> bool:
    try:
        lib(module, attr)
    except NotAvailable:
        return False
    return True


class Outcome(BaseModel):
    """What a step produced: its final status, why, its JSON payload and its findings."""

    status: Status
    reason: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)


def dump(obj: Any) -> dict[str, Any]:
    """A library result as a JSON-ready dict."""
    if obj is None:
        return {}
    if isinstance(obj, BaseModel):
        data: dict[str, Any] = obj.model_dump(mode="json")
        return data
    if isinstance(obj, dict):
        return obj
    raise TypeError(f"cannot record a {type(obj).__name__}")


def status_of(value: Any, default: Status = Status.PASS) -> Status:
    """Map a library's status field (Status, 'pass', 'ok', True ...) onto Status."""
    if isinstance(value, Status):
        return value
    if isinstance(value, bool):
        return Status.PASS if value else Status.FAIL
    text = str(getattr(value, "value", value)).lower()
    aliases = {
        "ok": "pass",
        "passed": "pass",
        "success": "pass",
        "failed": "fail",
        "error": "fail",
        "retest": "fail",
    }
    text = aliases.get(text, text)
    try:
        return Status(text)
    except ValueError:
        return default
