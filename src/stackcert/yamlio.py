"""YAML loading that remembers the line of every key, so validation errors can name it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from stackcert.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
LineMap = dict[tuple[str | int, ...], int]


def _walk(node: yaml.Node, path: tuple[str | int, ...], lines: LineMap) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def load_yaml(path: Path) -> tuple[Any, LineMap]:
    """Parse a YAML file; return the data and a map from key path to 1-based line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path}", where=str(path), fix="check the path, or use --preset NAME"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", where=str(path)) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", where=where, fix="fix the YAML syntax") from None
    lines: LineMap = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def line_of(lines: LineMap, loc: tuple[str | int, ...]) -> int | None:
    """The line of the deepest known prefix of `loc`."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


_RANGE = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", "≥"),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "≤"),
}


def validation_error(exc: ValidationError, path: Path, lines: LineMap) -> ConfigError:
    """Turn the first pydantic error into one line naming the key and the line."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "<top>"
    line = line_of(lines, loc)
    where = f"{path}:{line}" if line else str(path)
    kind = err["type"]
    if kind == "extra_forbidden":
        what, fix = f"unknown key '{key}'", "remove it or check its spelling (see docs/config.md)"
    elif kind == "missing":
        what, fix = f"missing required key '{key}'", f"add '{loc[-1]}:' (see docs/config.md)"
    elif kind in _RANGE:
        limit = (err.get("ctx") or {}).get(_RANGE[kind][0])
        what, fix = f"bad value for '{key}': {err['msg']}", f"use a value {_RANGE[kind][1]} {limit}"
    else:
        what, fix = f"bad value for '{key}': {err['msg']}", "see docs/config.md for the expected type"
    extra = len(exc.errors()) - 1
    if extra:
        what += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return ConfigError(what, where=where, fix=fix)


def load_model_file(path: Path, model: type[M]) -> M:
    """A YAML file validated into the given model; errors name the key and its line (ConfigError)."""
    data, lines = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of keys", where=f"{path}:1")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path, lines) from None
