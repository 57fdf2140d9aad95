"""The file-local rules of `stackcert migrate-check`: no index of any package is needed for these."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pydantic import BaseModel, Field

RULES: dict[str, str] = {
    "syntax-error": "the file does not parse",
    "relative-import": "a relative import left from the file's old package",
    "missing-plugin-module": "a vllm_fl module that does not exist in the plugin tree",
    "missing-plugin-name": "a name a vllm_fl module of the plugin tree does not define",
    "missing-vllm-module": "a vLLM module the installed vLLM does not have",
    "missing-vllm-api": "a vLLM name (import or attribute) the installed vLLM does not have",
    "config-no-class": "the config bridge file defines no PretrainedConfig subclass",
    "config-model-type": "a PretrainedConfig subclass without a model_type",
    "unregistered-model": "a model class of this file that the plugin does not register",
    "registration-target": "a registration of this file's module naming a class the file does not define",
    "absolute-path": "a hard-coded absolute path",
    "bare-except": "a bare `except:` (it also swallows KeyboardInterrupt and SystemExit)",
}

# Roots that only exist on someone's machine; "/v1/completions"-like strings are not paths here.
_ABS_PATH = re.compile(
    r"^(~/|[A-Za-z]:[\\/]|/(home|root|data|mnt|opt|tmp|usr|share|nfs|models?|workspace|scratch|export|"
    r"cache|var|media|Users|srv|lustre|gpfs|datasets?|ckpts?|checkpoints?|weights)(/|$))"
)
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


class Issue(BaseModel):
    """One problem: where, which rule, what, and how to fix it."""

    file: str
    line: int
    end_line: int | None = Field(None, description="last line of a statement spanning several")
    rule: str
    message: str
    fix: str


def parse(path: Path) -> tuple[ast.Module | None, Issue | None]:
    """The AST of a file, or a syntax-error issue."""
    try:
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=str(path)), None
    except SyntaxError as exc:
        return None, Issue(
            file=str(path),
            line=exc.lineno or 1,
            rule="syntax-error",
            message=f"the file does not parse: {exc.msg}",
            fix="fix the syntax; no other rule can run on this file",
        )


def guarded_imports(tree: ast.Module) -> set[int]:
    """ids of import nodes inside `try:` blocks that catch ImportError (deliberate compat shims)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try | ast.TryStar):
            continue
        caught: set[str] = set()
        for handler in node.handlers:
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught |= {t.id if isinstance(t, ast.Name) else "" for t in types if t is not None}
            if handler.type is None:
                caught.add("BaseException")
        if caught & _IMPORT_ERRORS:
            for stmt in node.body:
                out |= {id(n) for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom)}
    return out


def bare_excepts(tree: ast.Module, file: str) -> list[Issue]:
    """Every `except:` without an exception type."""
    return [
        Issue(
            file=file,
            line=node.lineno,
            rule="bare-except",
            message="bare `except:` also catches KeyboardInterrupt and SystemExit",
            fix="catch the exceptions you expect, e.g. `except (ImportError, RuntimeError):`",
        )
        for node in ast.walk(tree)
        if isinstance(node, ast.ExceptHandler) and node.type is None
    ]


def absolute_paths(tree: ast.Module, file: str) -> list[Issue]:
    """String literals that are machine-specific absolute paths (docstrings excepted)."""
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    out: list[Issue] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docstrings:
            continue
        text = node.value
        if len(text) < 300 and not any(c.isspace() for c in text) and _ABS_PATH.match(text):
            out.append(
                Issue(
                    file=file,
                    line=node.lineno,
                    rule="absolute-path",
                    message=f"hard-coded absolute path {text!r}",
                    fix="take it from the model config, vllm_config, or an environment variable",
                )
            )
    return out


def _defines_model_type(cls: ast.ClassDef) -> bool:
    for stmt in cls.body:
        targets = (
            stmt.targets
            if isinstance(stmt, ast.Assign)
            else [stmt.target]
            if isinstance(stmt, ast.AnnAssign)
            else []
        )
        value = getattr(stmt, "value", None)
        for t in targets:
            if isinstance(t, ast.Name) and t.id == "model_type":
                return isinstance(value, ast.Constant) and isinstance(value.value, str) and bool(value.value)
    return False


def base_name(node: ast.expr) -> str:
    """The last name of `a.b.C` or `C` (a base class, a called function)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def config_issues(tree: ast.Module, file: str) -> list[Issue]:
    """A config bridge must define a PretrainedConfig subclass, each with a non-empty model_type."""
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    config_classes: set[str] = {"PretrainedConfig"}
    found: list[ast.ClassDef] = []
    # Classes in file order: a subclass of a subclass defined above counts too.
    for cls in classes:
        if any(base_name(b) in config_classes for b in cls.bases):
            config_classes.add(cls.name)
            found.append(cls)
    if not found:
        return [
            Issue(
                file=file,
                line=1,
                rule="config-no-class",
                message="no PretrainedConfig subclass in the config bridge file",
                fix='define `class MyConfig(PretrainedConfig)` with `model_type = "my_model"`',
            )
        ]
    return [
        Issue(
            file=file,
            line=cls.lineno,
            rule="config-model-type",
            message=f"config class {cls.name} has no model_type",
            fix=f'add `model_type = "..."` to {cls.name} (the value of model_type in config.json)',
        )
        for cls in found
        if not _defines_model_type(cls)
    ]
