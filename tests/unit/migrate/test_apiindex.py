"""The package index: names read from the files, `import *` followed, imports only to confirm."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcert.migrate.apiindex import Found, ModuleIndex

PKG = {
    "__init__.py": "from .core import *\nVERSION = '1'\n",
    "core.py": "def run():\n    pass\n\n"
    "try:\n    import json as fastjson\nexcept ImportError:\n    fastjson = None\n",
    "lazy.py": "print('imported lazy')\ndef __getattr__(name):\n"
    "    if name == 'LATE':\n        return 1\n    raise AttributeError(name)\n",
    "sub/__init__.py": "",
    "sub/leaf.py": "for _n in ('A', 'B'):\n    globals()[_n] = _n\n"
    "LEAF = 1\nif LEAF: pass\nelse: OTHER = 2\n",
}


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleIndex:
    for rel, text in PKG.items():
        path = tmp_path / "scpkg_probe" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = ModuleIndex.installed("scpkg_probe")
    assert found is not None
    return found


def test_static_names_need_no_import(index: ModuleIndex) -> None:
    assert index.lookup("scpkg_probe", "VERSION").found is Found.YES
    assert index.lookup("scpkg_probe", "run").found is Found.YES  # through `from .core import *`
    assert index.lookup("scpkg_probe.core", "fastjson").found is Found.YES  # bound inside try
    assert index.lookup("scpkg_probe", "sub").found is Found.YES  # a submodule
    assert index.imports == []


def test_dynamic_module_is_confirmed_by_import(
    index: ModuleIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    assert index.lookup("scpkg_probe.lazy", "LATE").found is Found.YES
    printed = capsys.readouterr()
    assert printed.out == "" and "imported lazy" in printed.err  # stdout stays for --json
    missing = index.lookup("scpkg_probe.lazy", "EARLY")
    assert missing.found is Found.NO and missing.how == "imported"
    assert index.imports == ["scpkg_probe.lazy"]  # imported once, cached


def test_static_miss_is_confirmed_by_import(index: ModuleIndex) -> None:
    # `A` is set through globals(): invisible to the AST, found by the confirming import.
    assert index.lookup("scpkg_probe.sub.leaf", "A").found is Found.YES
    assert index.lookup("scpkg_probe.sub.leaf", "C").found is Found.NO


def test_plugin_tree_is_never_imported(tmp_path: Path) -> None:
    (tmp_path / "vllm_fl").mkdir()
    (tmp_path / "vllm_fl" / "__init__.py").write_text("raise SystemExit('imported!')\nX = 1\n")
    (tmp_path / "vllm_fl" / "dyn.py").write_text("def __getattr__(n):\n    return n\n")
    index = ModuleIndex("vllm_fl", tmp_path / "vllm_fl", may_import=False)
    assert index.lookup("vllm_fl", "X").found is Found.YES
    assert index.lookup("vllm_fl", "Y").found is Found.NO
    assert index.lookup("vllm_fl.dyn", "anything").found is Found.UNKNOWN
    assert index.has_module("vllm_fl.dyn") and not index.has_module("vllm_fl.nope")
    assert index.imports == []


def test_definers_find_where_a_name_is_defined(index: ModuleIndex) -> None:
    assert index.definers("run") == ["scpkg_probe.core"]
    assert index.definers("LEAF") == ["scpkg_probe.sub.leaf"]
    assert index.definers("VERSION") == ["scpkg_probe"]
    assert index.definers("fastjson") == []  # bound inside a try block, not at column 0
    assert index.definers("nothing") == []
    assert index.definers("else") == []  # `else: OTHER = 2` is not a definition of `else`
