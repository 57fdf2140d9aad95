"""A small FAKE vllm-plugin-FL tree in tmp: vllm_fl/ with models/, layers/norm.py and the
registering __init__.py (several models registered, as in the real plugin)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

INIT = '''"""FAKE vllm_fl/__init__.py registering several models."""


def register_model():
    from vllm import ModelRegistry

    ModelRegistry.register_model("TinyForCausalLM", "vllm_fl.models.tiny:TinyForCausalLM")
    ModelRegistry.register_model("OtherForCausalLM", "vllm_fl.models.other:OtherForCausalLM")
    ModelRegistry.register_model("Gemma3ForCausalLM", "vllm_fl.models.gemma3:Gemma3ForCausalLM")
    ModelRegistry.register_model("GhostForCausalLM", "vllm_fl.models.bad:GhostForCausalLM")
'''


def make_plugin(root: Path) -> Path:
    """Create the tree under `root`; return `root` (the checkout folder)."""
    pkg = root / "vllm_fl"
    (pkg / "models").mkdir(parents=True)
    (pkg / "layers").mkdir()
    (pkg / "__init__.py").write_text(INIT)
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "layers" / "__init__.py").write_text("")
    (pkg / "layers" / "norm.py").write_text("class FLRMSNorm:\n    pass\n")
    return root


def add_model(root: Path, fixture: str, name: str) -> Path:
    """Copy a fixture into vllm_fl/models/<name>.py."""
    dest = root / "vllm_fl" / "models" / f"{name}.py"
    shutil.copyfile(FIXTURES / fixture, dest)
    return dest


def expected(path: Path) -> set[tuple[int, str]]:
    """(line, rule) of every `# expect: RULE` marker in a fixture."""
    out = set()
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        m = re.search(r"# expect: ([a-z-]+)", line)
        if m:
            out.add((n, m.group(1)))
    return out
