"""Text from servers, models and configs made safe for the reports.

Nothing in a report can run or fetch anything: control characters (ANSI escapes included) are
removed, Markdown images and links from model output are neutralised, values inside code spans
and shell examples cannot close them, secrets in the serving environment are redacted, and long
texts are cut with their length shown.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from markupsafe import Markup

from stackcert.secrets import REDACTED, looks_secret

TEXT_CAP = 1000  # characters of one value shown in a report; longer ones are cut, length given
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def plain(value: Any, cap: int = TEXT_CAP) -> str:
    """One line of text: no escape sequences, no control characters, at most `cap` characters."""
    text = _ANSI.sub("", str(value))
    text = "".join(" " if ch in "\n\t\r" else ch for ch in text if ch >= " " or ch in "\n\t\r")
    text = "".join(ch for ch in text if not 0x7F <= ord(ch) < 0xA0)
    text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > cap:
        text = f"{text[:cap]}… (truncated: {len(text)} characters)"
    return text


def finalize(value: Any) -> Any:
    """Jinja's last step for every `{{ }}`: strings are made plain; Markup (our SVG) is kept."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return plain(value, TEXT_CAP + 200)  # (room for the note of a filter that already cut it)


def md(value: Any) -> str:
    """Text safe in Markdown prose and table cells: no HTML, no image or link, no table break."""
    text = plain(value)
    for ch in "\\`[]!|":  # `[` escaped: no image, no link; `|`: no table break
        text = text.replace(ch, "\\" + ch)
    text = text.replace("<", "&lt;").replace(">", "&gt;")  # no HTML, no <autolink>
    text = text.replace("://", ":\u200b//").replace("www.", "www\u200b.")  # no bare autolink
    return "\\" + text if text.startswith(("#", "-", "+", ">", "=")) else text


def mdcode(value: Any) -> str:
    """Text inside a `code span`: a backtick would close it."""
    return plain(value, 200).replace("`", "'")


def shquote(value: Any) -> str:
    """A shell word (one line: a newline could close the code fence)."""
    return shlex.quote(plain(value, 4000))


def shjoin(argv: list[Any]) -> str:
    """A command line, each word quoted."""
    return " ".join(shquote(a) for a in argv)


def serve_env(env: dict[str, str]) -> list[tuple[str, str, bool]]:
    """(name, shell-quoted value, redacted?) of the serving environment: secret values are never
    printed, and a name that is no shell variable name is dropped."""
    rows = []
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            continue
        secret = looks_secret(name) or value == REDACTED
        rows.append((name, "'<set it yourself>'" if secret else shquote(value), secret))
    return rows
