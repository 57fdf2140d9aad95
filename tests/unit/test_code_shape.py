"""The shape of the source tree: short modules, and public definitions that say what they do (issue #13)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "stackcert"
MAX_MODULE_LINES = 400
MIN_DOCSTRING_SHARE = 0.90
# Decorators that make a method a pydantic hook rather than part of a class's API.
_HOOK_DECORATORS = {"field_validator", "model_validator", "validator", "root_validator", "field_serializer"}


@dataclass(frozen=True)
class ModuleShape:
    """One module's line count and the public definitions it leaves without a docstring."""

    path: str
    lines: int
    public: int
    missing: tuple[str, ...]


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def _counts(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    decorators = {_decorator_name(d) for d in node.decorator_list}
    return not node.name.startswith("_") and not decorators & (_HOOK_DECORATORS | {"overload"})


def public_definitions(tree: ast.Module) -> list[tuple[str, bool]]:
    """Each public function, class and public-class method of a module, with whether it has a docstring."""
    found: list[tuple[str, bool]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _counts(node):
            found.append((node.name, ast.get_docstring(node) is not None))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found.append((node.name, ast.get_docstring(node) is not None))
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _counts(item):
                    found.append((f"{node.name}.{item.name}", ast.get_docstring(item) is not None))
    return found


def module_shapes(root: Path = SRC) -> list[ModuleShape]:
    """Every module under root, measured."""
    shapes = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        defs = public_definitions(ast.parse(text, filename=str(path)))
        shapes.append(
            ModuleShape(
                path=str(path.relative_to(root.parent)),
                lines=len(text.splitlines()),
                public=len(defs),
                missing=tuple(name for name, documented in defs if not documented),
            )
        )
    return shapes


def docstring_share(shapes: list[ModuleShape]) -> float:
    """Documented public definitions over all public definitions (1.0 when there are none)."""
    public = sum(s.public for s in shapes)
    return 1.0 if public == 0 else (public - sum(len(s.missing) for s in shapes)) / public


def test_no_module_is_over_the_line_limit() -> None:
    long = sorted((s for s in module_shapes() if s.lines > MAX_MODULE_LINES), key=lambda s: -s.lines)
    assert not long, f"modules over {MAX_MODULE_LINES} lines: " + ", ".join(
        f"{s.path} ({s.lines})" for s in long
    )


def test_public_definitions_say_what_they_do() -> None:
    shapes = module_shapes()
    share = docstring_share(shapes)
    if share >= MIN_DOCSTRING_SHARE:
        return
    worst = sorted((s for s in shapes if s.missing), key=lambda s: (-len(s.missing), s.path))[:15]
    lines = [
        f"  {s.path}: {len(s.missing)} of {s.public} missing ({', '.join(s.missing[:6])})" for s in worst
    ]
    public = sum(s.public for s in shapes)
    missing = sum(len(s.missing) for s in shapes)
    raise AssertionError(
        f"{share:.1%} of public definitions have a docstring ({public - missing}/{public}); "
        f"need {MIN_DOCSTRING_SHARE:.0%}. Most missing:\n" + "\n".join(lines)
    )


def test_the_measure_counts_what_it_should() -> None:
    tree = ast.parse(
        "def f():\n    '''Doc.'''\n"
        "def _hidden(): pass\n"
        "class C:\n"
        "    def __init__(self): pass\n"
        "    def method(self): pass\n"
        "    @field_validator('x')\n"
        "    def check(cls, v): return v\n"
        "class _Private:\n"
        "    def method(self): pass\n"
    )
    assert public_definitions(tree) == [("f", True), ("C", False), ("C.method", False)]
