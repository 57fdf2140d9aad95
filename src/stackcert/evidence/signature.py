"""Normalised error signatures: two runs of the same error give the same string.

We strip what changes from run to run (log prefixes, PIDs, timestamps, addresses, temp paths,
ports, numbers) and keep the words, so signatures can be compared and grouped across runs.
"""

from __future__ import annotations

import re

# "(EngineCore pid=2998) ERROR 11-22 15:54:50 [core.py:1510] " and plain "INFO 11-22 15:54:50 [x.py:1] "
LOG_PREFIX = re.compile(
    r"^(?:\((?P<proc>[\w.\-]+)(?: pid=\d+)?\)\s+)?"
    r"(?:(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\s+\[[^\]]*\]\s?)?"
)
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:\.\d+)?"), "<time>"),
    (re.compile(r"\bpid[=: ]\s*\d+", re.I), "pid=<n>"),
    (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
    (re.compile(r"(?:/tmp|/var/tmp|/dev/shm)/[^\s'\"),:]+"), "<tmp>"),
    (re.compile(r"\b[0-9a-f]{16,}\b"), "<hash>"),
    (re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::\]):\d+"), "<host:port>"),
    (re.compile(r"\bport\s*[=:]?\s*\d+", re.I), "port <n>"),
    (re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]
MAX_LEN = 300


def strip_log_prefix(line: str) -> str:
    """The message part of a log line, without vLLM's process/level/time/source prefix."""
    return LOG_PREFIX.sub("", line, count=1)


def normalise(message: str) -> str:
    """A stable signature of an error message."""
    text = strip_log_prefix(message.strip())
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text.strip()[:MAX_LEN]


def signature(category: str, exc_type: str | None, message: str) -> str:
    """`category:ExcType: normalised message` — the key findings are compared by."""
    head = f"{category}:{exc_type}" if exc_type else category
    return f"{head}: {normalise(message)}"
