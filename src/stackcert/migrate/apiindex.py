"""What a package tree provides: its modules and each module's top-level names, read from the files.

Importing vLLM modules is slow (torch, CUDA probes) and may fail on a machine without an
accelerator, so names are looked up in the module's AST first. Only a module whose names cannot be
known statically (a module `__getattr__`, `from x import *`, a compiled extension) or a static miss
is confirmed by importing it — and only for an installed package (`may_import`), never for the
plugin tree under check. Every answer is cached per module.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import keyword
import re
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import ModuleType

_EXT_SUFFIXES = (".so", ".pyd")
# A top-level definition: `class X`, `def X`, `async def X`, or `X = ...` / `X: T = ...` at column 0.
_DEFINITION = re.compile(r"^(?:(?:async\s+)?def|class)\s+(\w+)|^([A-Za-z_]\w*)\s*(?::[^=\n]*)?=(?!=)", re.M)


class Found(Enum):
    """The answer of a lookup: yes, no, or undecidable without importing."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


@dataclass
class Lookup:
    """The answer for one name: found or not, and how it was decided."""

    found: Found
    how: str = "static"


@dataclass
class _Names:
    names: set[str] = field(default_factory=set)
    dynamic: bool = False
    stars: list[tuple[int, str]] = field(default_factory=list)  # (level, module) of each `import *`


def top_level_names(tree: ast.Module) -> _Names:
    """Names a module binds at import time; `dynamic` when they cannot all be known statically."""
    out = _Names()

    def visit(body: list[ast.stmt]) -> None:
        """Bind the names of these statements (nested blocks of the top level included)."""
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                out.names.add(stmt.name)
                if stmt.name == "__getattr__":
                    out.dynamic = True
            elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    for node in ast.walk(target):
                        if isinstance(node, ast.Name):
                            out.names.add(node.id)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    out.names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(stmt, ast.ImportFrom):
                for alias in stmt.names:
                    if alias.name == "*":
                        out.stars.append((stmt.level, stmt.module or ""))
                    else:
                        out.names.add(alias.asname or alias.name)
            elif isinstance(stmt, ast.If | ast.For | ast.AsyncFor | ast.While | ast.With | ast.AsyncWith):
                if isinstance(stmt, ast.For | ast.AsyncFor):
                    for node in ast.walk(stmt.target):
                        if isinstance(node, ast.Name):
                            out.names.add(node.id)
                visit(stmt.body)
                visit(getattr(stmt, "orelse", []))
            elif isinstance(stmt, ast.Try | ast.TryStar):
                visit(stmt.body)
                for handler in stmt.handlers:
                    visit(handler.body)
                visit(stmt.orelse)
                visit(stmt.finalbody)

    visit(tree.body)
    return out


class ModuleIndex:
    """Modules and top-level names of the package `package` whose folder is `root`."""

    def __init__(self, package: str, root: Path, *, may_import: bool) -> None:
        self.package = package
        self.root = root
        self.may_import = may_import
        self._names: dict[str, _Names | None] = {}
        self._imported: dict[str, ModuleType | str] = {}
        self.imports: list[str] = []  # modules this index had to import (for the report)
        self._definitions: dict[str, list[str]] | None = None

    @classmethod
    def installed(cls, package: str) -> ModuleIndex | None:
        """The index of an installed package, found without importing it; None when absent."""
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return cls(package, Path(next(iter(spec.submodule_search_locations))), may_import=True)

    def owns(self, dotted: str) -> bool:
        """Whether `dotted` names this package or one of its modules."""
        return dotted == self.package or dotted.startswith(self.package + ".")

    def module_path(self, dotted: str) -> Path | None:
        """The file of module `dotted` (a package's __init__.py, a .py, or a compiled extension)."""
        if not self.owns(dotted):
            return None
        parts = dotted.split(".")[1:]
        base = self.root.joinpath(*parts)
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        if base.is_dir() and parts:  # a namespace package: a folder without __init__.py
            return base
        py = base.with_name(base.name + ".py") if parts else self.root / "__init__.py"
        if py.is_file():
            return py
        if parts and base.parent.is_dir():
            for cand in base.parent.glob(base.name + ".*"):
                if cand.suffix in _EXT_SUFFIXES:
                    return cand
        return None

    def has_module(self, dotted: str) -> bool:
        """Whether module `dotted` exists in the tree."""
        return self.module_path(dotted) is not None

    def _static(self, dotted: str) -> _Names | None:
        if dotted not in self._names:
            path = self.module_path(dotted)
            if path is not None and path.is_dir():
                self._names[dotted] = _Names()  # a namespace package binds nothing itself
            elif path is None or path.suffix != ".py":
                self._names[dotted] = None  # compiled (or absent): only an import can tell
            else:
                try:
                    tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
                except SyntaxError:
                    self._names[dotted] = None
                else:
                    self._names[dotted] = top_level_names(tree)
        return self._names[dotted]

    def _import(self, dotted: str) -> ModuleType | str:
        if dotted not in self._imported:
            self.imports.append(dotted)
            try:
                # A module may print or log on import: keep stdout for the --json answer.
                with contextlib.redirect_stdout(sys.stderr):
                    self._imported[dotted] = importlib.import_module(dotted)
            except Exception as exc:  # any import-time failure: the static answer stands
                self._imported[dotted] = (
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                )
        return self._imported[dotted]

    def _star_source(self, module: str, level: int, source: str) -> str:
        """The absolute module of `from <level dots><source> import *` inside `module`."""
        if not level:
            return source
        path = self.module_path(module)
        package = (
            module.split(".") if path is not None and path.name == "__init__.py" else module.split(".")[:-1]
        )
        base = package[: len(package) - (level - 1)] if level > 1 else package
        return ".".join([*base, source] if source else base)

    def _static_has(self, module: str, name: str, depth: int = 0) -> tuple[bool, bool]:
        """(found, dynamic) from the files alone, following `import *` within this package."""
        static = self._static(module)
        if static is None:
            return False, True
        if name in static.names:
            return True, False
        dynamic = static.dynamic
        for level, source in static.stars:
            target = self._star_source(module, level, source)
            if not self.owns(target) or depth > 8:
                dynamic = True  # a star import from another package: its names are not indexed here
                continue
            found, dyn = self._static_has(target, name, depth + 1)
            if found:
                return True, False
            dynamic = dynamic or dyn
        return False, dynamic

    def definers(self, name: str) -> list[str]:
        """Modules of the tree that define `name` at top level (class, def or assignment), for a fix.

        One pass over the files with a line regex, built on the first call only: it runs after a
        miss, never on a clean file.
        """
        if self._definitions is None:
            self._definitions = {}
            for path in sorted(self.root.rglob("*.py")):
                rel = path.relative_to(self.root).with_suffix("").parts
                dotted = ".".join([self.package, *(rel[:-1] if rel[-1] == "__init__" else rel)])
                text = path.read_text(encoding="utf-8", errors="replace")
                for match in _DEFINITION.finditer(text):
                    defined = match.group(1) or match.group(2)
                    if not keyword.iskeyword(defined):  # `else: x = 1` on one line defines x, not else
                        self._definitions.setdefault(defined, []).append(dotted)
        return self._definitions.get(name, [])

    def lookup(self, module: str, name: str) -> Lookup:
        """Does `module` provide `name` (a top-level name or a submodule)?"""
        if self.has_module(f"{module}.{name}"):
            return Lookup(Found.YES)
        found, dynamic = self._static_has(module, name)
        if found:
            return Lookup(Found.YES)
        if not self.may_import:
            return Lookup(Found.UNKNOWN if dynamic else Found.NO, "static (plugin tree, not imported)")
        mod = self._import(module)
        if isinstance(mod, str):
            if not dynamic:
                return Lookup(Found.NO, f"static; importing it failed ({mod})")
            return Lookup(Found.UNKNOWN, f"cannot tell: importing it failed ({mod})")
        return Lookup(Found.YES if hasattr(mod, name) else Found.NO, "imported")
