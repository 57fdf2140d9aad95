"""Wheel selection: pick a FlagTree-style wheel from the wheel table by vendor, Python, arch, glibc
and the installed torch; explain every row that does not fit instead of failing blindly."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field

from stackcert.yamlio import load_model_file


class WheelRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package: str
    version: str
    vendor: str
    backend: str
    triton: str
    python: list[str]
    arch: list[str]
    glibc_min: str | None = None
    torch: str | None = Field(None, description="PEP 440 specifier the installed torch must satisfy")
    file: str | None = Field(None, description="a wheel file name or URL instead of index + version")

    @property
    def requirement(self) -> str:
        return self.file or f"{self.package}=={self.version}"


class WheelTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: str | None = None
    rows: list[WheelRow]


class Target(BaseModel):
    """What the wheel must fit."""

    vendor: str | None
    python: str  # "3.11" or "3.11.7"
    arch: str
    glibc: str | None
    torch: str | None


class Rejection(BaseModel):
    row: str
    reasons: list[str]


class WheelChoice(BaseModel):
    package: str
    chosen: WheelRow | None = None
    index: str | None = None
    rejected: list[Rejection] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def explain(self) -> str:
        if self.chosen:
            return f"{self.chosen.requirement} ({self.chosen.backend}, triton {self.chosen.triton})"
        lines = [f"no {self.package} wheel fits this host:"]
        lines += [f"  {r.row}: {'; '.join(r.reasons)}" for r in self.rejected]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def load_wheel_table(path: Path | None = None) -> WheelTable:
    if path is not None:
        return load_model_file(path, WheelTable)
    with resources.as_file(resources.files("stackcert.install") / "wheels.yaml") as p:
        return load_model_file(Path(p), WheelTable)


def _base(version: str) -> Version | None:
    try:
        return Version(Version(version).base_version)  # drop +cpu / +cu121 local tags
    except InvalidVersion:
        return None


def _reasons(row: WheelRow, target: Target) -> list[str]:
    reasons: list[str] = []
    if target.vendor is None:
        reasons.append("no accelerator vendor on this host (FlagTree wheels are per vendor)")
    elif row.vendor != target.vendor:
        reasons.append(f"vendor {row.vendor}, host has {target.vendor}")
    py = ".".join(target.python.split(".")[:2])
    if py not in row.python:
        reasons.append(f"Python {'/'.join(row.python)}, host has {py}")
    if target.arch not in row.arch:
        reasons.append(f"arch {'/'.join(row.arch)}, host is {target.arch}")
    if row.glibc_min:
        if target.glibc is None:
            reasons.append(f"needs glibc >= {row.glibc_min}, host glibc could not be read")
        elif (_base(target.glibc) or Version("0")) < Version(row.glibc_min):
            reasons.append(f"needs glibc >= {row.glibc_min}, host has {target.glibc}")
    if row.torch:
        try:
            spec = SpecifierSet(row.torch)
        except InvalidSpecifier:
            reasons.append(f"bad torch specifier in the table: {row.torch!r}")
            return reasons
        torch = _base(target.torch) if target.torch else None
        if torch is None:
            reasons.append(f"built for torch {row.torch}, torch is not installed")
        elif torch not in spec:
            reasons.append(f"built for torch {row.torch} (Triton {row.triton} ABI), host has {target.torch}")
    return reasons


def select_wheel(table: WheelTable, target: Target, *, package: str = "flagtree") -> WheelChoice:
    """The first row that fits (table order = preference), or every rejection with its reasons."""
    choice = WheelChoice(package=package, index=table.index)
    rows = [r for r in table.rows if r.package == package]
    if not rows:
        choice.notes.append(f"the wheel table has no row for package '{package}'")
    if target.glibc is None:
        choice.notes.append("host glibc unknown: rows that need a minimum glibc cannot be matched")
    for row in rows:
        reasons = _reasons(row, target)
        if not reasons:
            choice.chosen = row
            return choice
        choice.rejected.append(Rejection(row=row.requirement, reasons=reasons))
    return choice
