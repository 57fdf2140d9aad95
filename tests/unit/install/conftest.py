"""Tiny real wheels built in the test session, and a plain temporary venv to install them into.

The wheels are built with `pip wheel --no-deps --no-build-isolation` from minimal setup.py
projects. The two `torch` wheels are FAKES (metadata + an empty module) standing in for a vendor
torch build inside throwaway venvs; they never go near the project's real venv.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stackcert.env.probe import probe_host
from stackcert.install.apply import make_context
from stackcert.install.plan import PlanContext

PY = Path(sys.executable)

PROJECTS: dict[str, dict[str, str]] = {
    "sc_good": {
        "version": "1.0",
        "code": "__version__ = '1.0'\n\ndef register():\n    return None\n",
        "extra": "entry_points={'vllm.general_plugins': ['sc_good = sc_good:register']},",
    },
    "sc_broken": {
        "version": "1.0",
        "code": "raise ImportError('sc_broken needs libmissing.so.1')\n",
        "extra": "",
    },
    "sc_old_torch": {
        "version": "1.0",
        "code": "__version__ = '1.0'\n",
        "extra": "install_requires=['torch==1.0.0'],",
    },
    "sc_slow": {
        "version": "1.0",
        "code": "import time\ntime.sleep(60)\n",
        "extra": "",
    },
    "torch-1.0.0": {"version": "1.0.0", "code": "__version__ = '1.0.0'  # FAKE torch\n", "extra": ""},
    "torch-2.0.0": {"version": "2.0.0", "code": "__version__ = '2.0.0'  # FAKE torch\n", "extra": ""},
}


def _project(root: Path, key: str, spec: dict[str, str]) -> Path:
    name = key.split("-")[0]
    folder = root / key
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(spec["code"])
    (folder / "setup.py").write_text(
        textwrap.dedent(
            f"""
            from setuptools import setup
            setup(name={name!r}, version={spec["version"]!r}, packages=[{name!r}], {spec["extra"]})
            """
        )
    )
    return folder


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> folder. 'main' holds sc_* and the FAKE torch 1.0.0; 'vendor' holds the FAKE torch 2.0.0;
    'nolinks' holds only sc_old_torch (so its torch requirement cannot be resolved)."""
    root = tmp_path_factory.mktemp("wheelsrc")
    dirs = {k: tmp_path_factory.mktemp(k) for k in ("main", "vendor", "nolinks")}
    layout = {
        "main": ["sc_good", "sc_broken", "sc_old_torch", "sc_slow", "torch-1.0.0"],
        "vendor": ["torch-2.0.0"],
        "nolinks": ["sc_old_torch"],
    }
    for target, keys in layout.items():
        srcs = [str(_project(root / target, k, PROJECTS[k])) for k in keys]
        subprocess.run(
            [
                str(PY),
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-q",
                "-w",
                str(dirs[target]),
                *srcs,
            ],
            check=True,
            timeout=300,
            capture_output=True,
        )
    return dirs


@pytest.fixture(scope="session")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain, small venv (no system site-packages); returns its python."""
    folder = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([str(PY), "-m", "venv", str(folder)], check=True, timeout=300)
    return folder / "bin" / "python"


TINY_CONFIG = """\
name: tiny
packages:
  - name: sc_good
    role: engine
    source: {kind: pypi, requirement: "sc_good==1.0"}
    gate: {name: sc_good, role: engine, module: sc_good, entry_points: {vllm.general_plugins: [sc_good]}}
  - name: sc_broken
    role: plugin
    source: {kind: pypi, requirement: sc_broken}
"""


def offline_context(python: Path, run_dir: Path, wheel_dir: Path) -> PlanContext:
    return make_context(
        host=probe_host(accelerators=False),
        vendor=None,
        python=python,
        run_dir=run_dir,
        protect=["torch", "triton"],
        offline=True,
        wheel_dir=wheel_dir,
    )


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="session")
def offline_ctx() -> object:
    """The factory `offline_context(python, run_dir, wheel_dir)`."""
    return offline_context


@pytest.fixture(scope="session")
def tiny_config_text() -> str:
    return TINY_CONFIG
