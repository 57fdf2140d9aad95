"""Model registration of `stackcert migrate-check`: `register_model` calls naming this file's module.

The plugin registers many models, in `vllm_fl/__init__.py` and in patch modules, with literal
targets (`"vllm_fl.models.foo:FooForCausalLM"`), imported classes, module-level constants for the
architecture and f-strings over a table of classes. Only the calls whose target module is the
checked file's module count: comparing every registration with every file is what makes a naive
check report false issues as soon as a second model is registered.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from stackcert.migrate.rules import Issue, base_name, parse

# vLLM's naming convention for architecture classes (what config.json's "architectures" lists).
MODEL_CLASS = re.compile(r"^\w+For[A-Z]\w*$")
ANY_CLASS = "*"  # an f-string target whose class part is computed: it may be any class of the module


@dataclass
class Registration:
    """One `register_model(arch, "module:Class")` call."""

    arch: str
    module: str
    cls: str
    file: str
    line: int


def _constants(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
            for t in stmt.targets:
                if isinstance(t, ast.Name) and isinstance(stmt.value.value, str):
                    out[t.id] = stmt.value.value
    return out


def _target(node: ast.expr, imported: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
        module, cls = node.value.split(":", 1)
        return module, cls
    if isinstance(node, ast.Name) and node.id in imported:
        return imported[node.id]
    if isinstance(node, ast.JoinedStr):
        prefix = ""
        for part in node.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                break
            prefix += part.value
        if ":" in prefix:  # the module is literal, the class is computed
            return prefix.split(":", 1)[0], ANY_CLASS
    return None


def registrations(tree: ast.Module, file: str) -> list[Registration]:
    """Every register_model call of a file whose target module can be read."""
    imported: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
    constants = _constants(tree)
    out: list[Registration] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or base_name(node.func) != "register_model" or len(node.args) < 2:
            continue
        arch_node, target = node.args[0], node.args[1]
        if isinstance(arch_node, ast.Constant) and isinstance(arch_node.value, str):
            arch = arch_node.value
        elif isinstance(arch_node, ast.Name):
            arch = constants.get(arch_node.id, arch_node.id)
        else:
            arch = "?"
        found = _target(target, imported)
        if found is not None:
            out.append(Registration(arch, found[0], found[1], file, node.lineno))
    return out


def registration_files(package: Path, init_file: Path | None) -> list[Path]:
    """--init-file alone when given; else vllm_fl/__init__.py and every package file that registers."""
    if init_file is not None:
        return [init_file]
    files = [package / "__init__.py"]
    for path in sorted(package.rglob("*.py")):
        if path not in files and "register_model" in path.read_text(encoding="utf-8", errors="replace"):
            files.append(path)
    return files


def registration_issues(
    tree: ast.Module, file: str, module: str, files: list[Path], *, exact: bool
) -> list[Issue]:
    """Registrations of this file's module against the classes it defines.

    `exact`: the file lies in the plugin tree, so its module name is known; otherwise (a file not
    copied in yet) a registration matches on the module's last part.
    """
    out: list[Issue] = []
    regs: list[Registration] = []
    for path in files:
        reg_tree, bad = parse(path)
        if reg_tree is None:
            out.append(bad)  # type: ignore[arg-type]
            continue
        regs += registrations(reg_tree, str(path))
    defined = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    stem = module.rsplit(".", 1)[-1]
    mine = [r for r in regs if r.module == module or (not exact and r.module.rsplit(".", 1)[-1] == stem)]
    for r in mine:
        if r.cls != ANY_CLASS and r.cls not in defined:
            out.append(
                Issue(
                    file=r.file,
                    line=r.line,
                    rule="registration-target",
                    message=f"architecture {r.arch} is registered as {r.module}:{r.cls}, "
                    f"which {file} does not define",
                    fix=f"register a class this file defines ({', '.join(sorted(defined)) or 'none'}), "
                    "or fix the name",
                )
            )
    registered = {r.cls for r in mine}
    where = str(files[0]) if len(files) == 1 else f"{files[0]} (or any file of the plugin)"
    for name, cls in defined.items():
        if MODEL_CLASS.match(name) and name not in registered and ANY_CLASS not in registered:
            out.append(
                Issue(
                    file=file,
                    line=cls.lineno,
                    rule="unregistered-model",
                    message=f"model class {name} is not registered in {where}",
                    fix=f'add `ModelRegistry.register_model("{name}", "{module}:{name}")` '
                    "to register_model()",
                )
            )
    return out
