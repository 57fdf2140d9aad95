"""FlagTree wheel selection: pick a row of the wheel table by vendor, Python, arch, glibc and the
installed torch's Triton ABI; when none fits, say "no build for this combination" and show the
nearest builds with what each lacks."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field

from stackcert.yamlio import load_model_file


class WheelRow(BaseModel):
    """One prebuilt wheel: what it is built for and where that fact comes from."""

    model_config = ConfigDict(extra="forbid")

    package: str
    version: str
    vendor: str
    backend: str
    triton: str = Field(description="the Triton line the wheel provides, e.g. '3.6'")
    python: list[str]
    arch: list[str]
    glibc_min: str | None = None
    torch: str | None = Field(None, description="PEP 440 specifier the installed torch must satisfy")
    file: str | None = Field(None, description="a wheel file name or URL instead of index + version")
    source: str | None = Field(None, description="key into the table's sources")
    note: str | None = None

    @property
    def requirement(self) -> str:
        """What pip is given: the file, or NAME===VERSION (exact, local tag included)."""
        return self.file or f"{self.package}==={self.version}"

    @property
    def label(self) -> str:
        """Row name in explanations: version plus Python, since one version may have two wheels."""
        return f"{self.package} {self.version} (py{'/'.join(self.python)})"


class WheelTable(BaseModel):
    """The wheel table file: index, sources, the torch->Triton map and the rows."""

    model_config = ConfigDict(extra="forbid")

    index: str | None = None
    sources: dict[str, str] = Field(default_factory=dict)
    torch_triton: dict[str, list[str]] = Field(default_factory=dict)
    upstream_torch_vendors: list[str] = Field(default_factory=list)
    rows: list[WheelRow]


class Target(BaseModel):
    """What the wheel must fit."""

    vendor: str | None
    python: str  # "3.11" or "3.11.7"
    arch: str
    glibc: str | None
    torch: str | None
    triton: str | None = None


class Rejection(BaseModel):
    """A row that does not fit, and why."""

    row: str
    reasons: list[str]


class WheelChoice(BaseModel):
    """The chosen row, or none with the nearest rows and their reasons."""

    package: str
    chosen: WheelRow | None = None
    index: str | None = None
    expected_triton: list[str] = Field(default_factory=list, description="Triton lines the torch works with")
    alternatives: list[str] = Field(default_factory=list, description="other rows that fit, best first")
    rejected: list[Rejection] = Field(default_factory=list)
    nearest: list[Rejection] = Field(default_factory=list, description="closest misses, fewest reasons first")
    notes: list[str] = Field(default_factory=list)

    def explain(self) -> str:
        """One line for a choice; for no choice, the nearest builds and what each lacks."""
        if self.chosen:
            return f"{self.chosen.requirement} ({self.chosen.backend}, Triton {self.chosen.triton})"
        near = self.nearest or self.rejected
        lines = [f"no {self.package} build for this combination" + ("; nearest builds:" if near else "")]
        lines += [f"  {r.row}: {'; '.join(r.reasons)}" for r in near]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def load_wheel_table(path: Path | None = None) -> WheelTable:
    """The packaged table, or one given with --wheel-table."""
    if path is not None:
        return load_model_file(path, WheelTable)
    with resources.as_file(resources.files("stackcert.install") / "wheels.yaml") as p:
        return load_model_file(Path(p), WheelTable)


def _base(version: str) -> Version | None:
    try:
        return Version(Version(version).base_version)  # drop +cpu / +corex local tags
    except InvalidVersion:
        return None


def _line(version: str | None) -> str | None:
    base = _base(version) if version else None
    return f"{base.major}.{base.minor}" if base else None


def _line_key(line: str) -> tuple[int, ...]:
    return tuple(int(p) for p in line.split(".") if p.isdigit())


def _reasons(row: WheelRow, target: Target, table: WheelTable, expected: list[str]) -> list[str]:
    reasons: list[str] = []
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
    torch = _base(target.torch) if target.torch else None
    if torch is None:
        reasons.append(
            f"built for Triton {row.triton}; torch is not installed (install the vendor's torch first)"
        )
        return reasons
    if row.torch:
        try:
            ok = torch in SpecifierSet(row.torch)
        except InvalidSpecifier:
            reasons.append(f"bad torch specifier in the table: {row.torch!r}")
            return reasons
        if not ok:
            reasons.append(f"built for torch {row.torch} (Triton {row.triton} ABI), host has {target.torch}")
    elif target.vendor in table.upstream_torch_vendors:
        if not expected:
            reasons.append(
                f"Triton {row.triton}; torch {_line(target.torch)} is not in the table's torch->Triton map"
            )
        elif row.triton not in expected:
            reasons.append(f"Triton {row.triton} ABI, torch {target.torch} needs Triton {'/'.join(expected)}")
    return reasons


def _rank(row: WheelRow, expected: list[str], installed: str | None) -> tuple[object, ...]:
    """Sort key, best first: Triton line torch works with (or the installed one), then the closest
    line below it, then lines above; releases before pre-releases; newer versions first."""
    line = _line_key(row.triton)
    want = [_line_key(e) for e in expected] or ([_line_key(installed)] if installed else [])
    match = row.triton in expected or (installed is not None and row.triton == installed)
    below = bool(want) and line < max(want)
    version = Version(row.version)
    closeness = line if below else tuple(-p for p in line)
    return (not match, not below, tuple(-p for p in closeness), version.is_prerelease, _neg(version))


def _neg(version: Version) -> tuple[int, ...]:
    return tuple(-p for p in version.release)


def select_wheel(table: WheelTable, target: Target, *, package: str = "flagtree") -> WheelChoice:
    """The best fitting row of the target's vendor, or 'no build for this combination' + nearest."""
    expected = table.torch_triton.get(_line(target.torch) or "", [])
    choice = WheelChoice(package=package, index=table.index, expected_triton=expected)
    rows = [r for r in table.rows if r.package == package]
    if not rows:
        choice.notes.append(f"the wheel table has no row for package '{package}'")
        return choice
    if target.vendor is None:
        choice.notes.append("no accelerator vendor on this host (FlagTree wheels are per vendor)")
        return choice
    mine = [r for r in rows if r.vendor == target.vendor]
    if not mine:
        others = sorted({r.vendor for r in rows})
        choice.notes.append(
            f"FlagTree publishes no wheel for vendor '{target.vendor}' "
            f"(wheels exist for: {', '.join(others)}); build it from source with FLAGTREE_BACKEND set"
        )
        return choice
    if target.glibc is None:
        choice.notes.append("host glibc unknown: rows that need a minimum glibc cannot be matched")
    installed = _line(target.triton)
    fitting: list[WheelRow] = []
    for row in mine:
        reasons = _reasons(row, target, table, expected)
        if reasons:
            choice.rejected.append(Rejection(row=row.label, reasons=reasons))
        else:
            fitting.append(row)
    fitting.sort(key=lambda r: _rank(r, expected, installed))
    if fitting:
        choice.chosen = fitting[0]
        choice.alternatives = [r.label for r in fitting[1:]]
        if (
            target.vendor not in table.upstream_torch_vendors
            and expected
            and fitting[0].triton not in expected
        ):
            choice.notes.append(
                f"vendor torch {target.torch}: upstream torch of that line uses Triton {'/'.join(expected)}; "
                f"chose Triton {fitting[0].triton}, the import gate checks it"
            )
        return choice
    order = {r.label: i for i, r in enumerate(sorted(mine, key=lambda r: _rank(r, expected, installed)))}
    # Nearest: the builds torch wants first (what to change on the host), then the fewest misses.
    choice.nearest = sorted(
        choice.rejected, key=lambda j: (order.get(j.row, 0) > 0, len(j.reasons), order.get(j.row, 0))
    )[:3]
    if expected:
        choice.notes.append(f"torch {target.torch} works with Triton {'/'.join(expected)}")
    return choice
