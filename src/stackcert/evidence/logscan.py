"""Turn an engine log into located findings: tracebacks (root cause first) and fatal log lines.

`fatal_line` is used live while a server starts (to end the wait early); `scan_log`/`scan_lines`
read the whole log afterwards and return findings, the most likely root cause first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from stackcert.evidence.classify import Rule, classify, extract_operator, match_rule
from stackcert.evidence.findings import Finding, LogExcerpt
from stackcert.evidence.signature import LOG_PREFIX, signature, strip_log_prefix

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')
_EXC = re.compile(
    r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure|Fault)|Exception|"
    r"[A-Za-z_][\w.]*\.[A-Z]\w*)(?::\s?(?P<msg>.*))?$"
)
# Messages of exceptions that only wrap another one: they are never the root cause.
_WRAPPER = re.compile(
    r"See (the )?(stack trace for )?root cause|initialization failed|failed to start|"
    r"EngineDeadError|EngineGenerateError",
    re.I,
)
# Lines that look alarming but are not (vLLM on CPU prints these on every start).
BENIGN = re.compile(
    r"Triton is installed, but doesn't include CPU backend|Triton is not installed|"
    r"Model Runner V2 requires Triton|Failed to create oneDNN linear|is not found in LD_PRELOAD|"
    r"FutureWarning|DeprecationWarning|UserWarning|No available shared memory broadcast block|"
    r"Failed to import .* from vllm\._|Could not import .* falling back",
    re.I,
)
# Lines that end a startup wait at once (the process is dying or cannot work).
_FATAL_LINE = re.compile(
    r"out of memory|OutOfMemoryError|Cannot allocate memory|Segmentation fault|core dumped|"
    r"Fatal Python error|SIGSEGV|Illegal instruction|CUDA error|device-side assert|"
    r"unrecognized arguments|: error: argument|address already in use|Errno 98|"
    r"EngineCore failed to start|Engine core initialization failed|"
    r"^(?:ModuleNotFoundError|ImportError):",
    re.I,
)
EXCERPT_HEAD = 4
EXCERPT_TAIL = 26


@dataclass
class Traceback:
    """One Python traceback found in a log: its line span, frame paths, exception type and message."""

    first_line: int  # 1-based, the "Traceback (most recent call last):" line
    last_line: int
    frames: list[str] = field(default_factory=list)
    exc_type: str | None = None
    message: str = ""
    done: bool = False

    @property
    def wrapper(self) -> bool:
        """Whether the exception only reports another one (e.g. 'see root cause', EngineDeadError)."""
        return bool(_WRAPPER.search(self.message)) or (self.exc_type or "").endswith("EngineDeadError")


def _proc_key(line: str) -> str:
    m = LOG_PREFIX.match(line)
    return (m.group("proc") or "") if m else ""


def parse_tracebacks(lines: list[str]) -> list[Traceback]:
    """Every Python traceback in the log, in order; interleaved processes are kept apart."""
    open_tb: dict[str, Traceback] = {}
    found: list[Traceback] = []
    for idx, raw in enumerate(lines, start=1):
        key = _proc_key(raw)
        text = strip_log_prefix(raw.rstrip("\n"))
        if text.startswith("Traceback (most recent call last)"):
            tb = Traceback(first_line=idx, last_line=idx)
            open_tb[key] = tb
            found.append(tb)
            continue
        tb_open = open_tb.get(key)
        if tb_open is None:
            continue
        frame = _FRAME.match(text)
        if frame:
            tb_open.frames.append(frame.group("path"))
            tb_open.last_line = idx
        elif text.startswith((" ", "\t")) or not text.strip():
            tb_open.last_line = idx
        else:
            exc = _EXC.match(text.strip())
            if exc:
                tb_open.exc_type = exc.group("type")
                tb_open.message = (exc.group("msg") or "").strip()
            else:
                tb_open.message = text.strip()
            tb_open.last_line = idx
            tb_open.done = True
            del open_tb[key]
    return found


def fatal_line(line: str) -> bool:
    """Whether one log line means the engine cannot come up (benign CPU warnings excluded)."""
    text = strip_log_prefix(line.rstrip("\n"))
    if BENIGN.search(text):
        return False
    return bool(_FATAL_LINE.search(text))


def _excerpt(lines: list[str], first: int, last: int, path: Path | None) -> LogExcerpt:
    block = [ln.rstrip("\n") for ln in lines[first - 1 : last]]
    if len(block) > EXCERPT_HEAD + EXCERPT_TAIL:
        skipped = len(block) - EXCERPT_HEAD - EXCERPT_TAIL
        block = [*block[:EXCERPT_HEAD], f"... ({skipped} lines skipped) ...", *block[-EXCERPT_TAIL:]]
    return LogExcerpt(path=str(path) if path else None, first_line=first, lines=block)


def _finding_from_tb(tb: Traceback, lines: list[str], ctx: _Ctx) -> Finding:
    exc = tb.exc_type or "Error"
    text = f"{exc}: {tb.message}"
    category, layer, component = classify(text, tb.frames, ctx.model_dirs)
    operator = extract_operator(text) or extract_operator("\n".join(tb.frames))
    return Finding(
        step=ctx.step,
        phase=ctx.phase,
        layer=layer,
        component=component,
        category=category,
        signature=signature(category, exc, tb.message),
        message=text[:500],
        operator=operator,
        excerpt=_excerpt(lines, tb.first_line, tb.last_line, ctx.path),
    )


def _finding_from_line(idx: int, lines: list[str], rule: Rule | None, ctx: _Ctx) -> Finding:
    text = strip_log_prefix(lines[idx - 1].rstrip("\n")).strip()
    category, layer, component = classify(text)
    return Finding(
        step=ctx.step,
        phase=ctx.phase,
        layer=layer,
        component=component,
        category=category,
        signature=signature(category, None, text),
        message=text[:500],
        operator=extract_operator(text),
        excerpt=_excerpt(lines, max(1, idx - 3), min(len(lines), idx + 3), ctx.path),
    )


@dataclass(frozen=True)
class _Ctx:
    step: str
    phase: str
    path: Path | None
    model_dirs: tuple[str, ...]


def scan_lines(
    lines: list[str],
    *,
    step: str,
    phase: str = "",
    path: Path | None = None,
    model_dirs: tuple[str, ...] = (),
) -> list[Finding]:
    """Findings in a log, root cause first; duplicates (same signature) appear once."""
    ctx = _Ctx(step, phase, path, model_dirs)
    tbs = [tb for tb in parse_tracebacks(lines) if tb.done]
    primary = [tb for tb in tbs if not tb.wrapper]
    ordered = primary + [tb for tb in tbs if tb.wrapper]
    findings = [_finding_from_tb(tb, lines, ctx) for tb in ordered]
    covered = {i for tb in tbs for i in range(tb.first_line, tb.last_line + 1)}
    for idx, line in enumerate(lines, start=1):
        if idx in covered or not fatal_line(line):
            continue
        findings.append(_finding_from_line(idx, lines, match_rule(line), ctx))
    # Keep the first finding of each signature; fatal lines found outside tracebacks go first when
    # no traceback is a root cause (e.g. a segfault or an argparse error).
    seen: set[str] = set()
    unique: list[Finding] = []
    for f in findings:
        if f.signature not in seen:
            seen.add(f.signature)
            unique.append(f)
    if not primary:
        unique.sort(key=lambda f: 0 if f.category != "crash" else 1)
    return unique


def read_lines(path: Path) -> list[str]:
    """The lines of a log file, undecodable bytes replaced; none when the file does not exist."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []


def scan_log(path: Path, *, step: str, phase: str = "", model_dirs: tuple[str, ...] = ()) -> list[Finding]:
    """The findings in a log file, root cause first (scan_lines on the file's lines)."""
    return scan_lines(read_lines(path), step=step, phase=phase, path=path, model_dirs=model_dirs)
