"""Output-quality checks on generated text: pure functions, no engine.

A failing check returns a short reason; an empty list of reasons means the text is acceptable.
"""

from __future__ import annotations

import unicodedata

from stackcert.smoke.models import QualityThresholds

SANE_FINISH_REASONS = frozenset({"length", "stop"})
_ALLOWED_CONTROL = frozenset("\n\t")


def decode_utf8(raw: bytes) -> tuple[str | None, str | None]:
    """Strict UTF-8 decoding: (text, None) or (None, reason)."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 at byte {exc.start}: {raw[exc.start : exc.start + 4]!r}"


def encoding_problem(text: str, *, truncated: bool = False) -> str | None:
    """Lone surrogates or replacement characters (bytes that were not valid UTF-8).

    A cut at max_tokens may end inside a multi-byte character, so a trailing U+FFFD is fine then.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not encodable as UTF-8 at char {exc.start} (lone surrogate)"
    body = text.rstrip("\ufffd") if truncated else text
    pos = body.find("\ufffd")
    if pos >= 0:
        return f"replacement character U+FFFD at char {pos} (undecodable bytes)"
    return None


def control_chars(text: str) -> str | None:
    """What is wrong when the text holds control characters other than tab/newline; None when clean."""
    bad = [
        (i, ch)
        for i, ch in enumerate(text)
        if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROL
    ]
    if not bad:
        return None
    i, ch = bad[0]
    return f"{len(bad)} control character(s), first U+{ord(ch):04X} at char {i}"


def _tail_loop(text: str, max_period: int) -> tuple[int, int]:
    """(period, repeats) of the shortest unit that repeats most at the end of the text.

    Linear in the length: the repeats are counted by doubling then halving the block compared
    (an `endswith(unit * k)` loop is quadratic: 1 MiB of one character took about a minute).
    """
    best = (0, 0)
    n = len(text)
    for period in range(1, max_period + 1):
        if n < 2 * period:
            break
        unit = text[-period:]
        repeats = 1  # text ends with `unit * repeats`; grow by the largest step that still matches
        step = 1
        while (repeats + step) * period <= n and text.endswith(unit * step, 0, n - repeats * period):
            repeats += step
            step *= 2
        while step > 1:
            step //= 2
            if (repeats + step) * period <= n and text.endswith(unit * step, 0, n - repeats * period):
                repeats += step
        if repeats * period > best[0] * best[1]:
            best = (period, repeats)
    return best


def degenerate(text: str, thresholds: QualityThresholds | None = None) -> str | None:
    """A text stuck in a tiny loop ('the the the', '!!!!', one token over and over).

    Sentence-level repetition (a small base model continuing a Q/A pattern) is not degenerate:
    only short loop units count.
    """
    t = thresholds or QualityThresholds()
    body = text.strip()
    if not body:
        return None
    period, repeats = _tail_loop(body, t.max_period_chars)
    covered = period * repeats
    if repeats >= t.min_repeats and covered >= t.min_loop_fraction * len(body):
        unit = body[-period:]
        return f"degenerate: {unit!r} repeated {repeats}x ({covered}/{len(body)} chars)"
    if len(body) >= t.min_len_for_ratio:
        distinct = len(set(body)) / len(body)
        if distinct < t.min_distinct_char_ratio:
            return f"degenerate: only {len(set(body))} distinct characters in {len(body)}"
    return None


def finish_reason_problem(reason: str | None) -> str | None:
    """What is wrong with a finish_reason that is not stop or length; None when it is sane."""
    if reason in SANE_FINISH_REASONS:
        return None
    return f"finish_reason {reason!r} is not one of {sorted(SANE_FINISH_REASONS)}"


def text_problems(
    text: str,
    finish_reason: str | None,
    *,
    expect: str | None = None,
    thresholds: QualityThresholds | None = None,
) -> list[str]:
    """Every quality problem of one generated text (empty list: fine)."""
    problems: list[str] = []
    if not text.strip():
        problems.append("empty output")
    for problem in (
        encoding_problem(text, truncated=finish_reason == "length"),
        control_chars(text),
        degenerate(text, thresholds),
        finish_reason_problem(finish_reason),
    ):
        if problem:
            problems.append(problem)
    if expect is not None and expect not in text:
        problems.append(f"expected {expect!r} in the output, got {text[:80]!r}")
    return problems
