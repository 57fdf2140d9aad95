"""Output-quality rules: empty, degenerate, control characters, invalid UTF-8, finish reasons."""

from __future__ import annotations

import pytest

from stackcert.smoke.quality import (
    control_chars,
    decode_utf8,
    degenerate,
    encoding_problem,
    finish_reason_problem,
    text_problems,
)

DEMO_ANSWER = " 12+7 = 19\nQuestion: What is 12+7?\nAnswer: 12+7 = 19\nQuestion: What is 12+7?\nAnswer:"


def test_demo_answer_is_fine_even_though_it_repeats_the_pattern() -> None:
    assert text_problems(DEMO_ANSWER, "length", expect="19") == []


@pytest.mark.parametrize(
    "text",
    [
        "the the the the the the the the the the",
        "!!!!!!!!!!!!!!!!!!!!!!!!",
        "ab" * 20,
        "Paris. " + "<pad>" * 12,
    ],
)
def test_tiny_loops_are_degenerate(text: str) -> None:
    assert degenerate(text) is not None


@pytest.mark.parametrize(
    "text", ["The capital of France is Paris.", "aaa bbb", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12", "hello"]
)
def test_ordinary_text_is_not_degenerate(text: str) -> None:
    assert degenerate(text) is None


def test_empty_and_whitespace_outputs_fail() -> None:
    assert "empty output" in text_problems("", "length")
    assert "empty output" in text_problems("  \n ", "stop")


def test_control_characters_except_newline_and_tab() -> None:
    assert control_chars("line one\n\tline two") is None
    problem = control_chars("bad\x00byte\x07")
    assert problem is not None and "U+0000" in problem and problem.startswith("2 ")
    assert any("control" in p for p in text_problems("ok text\x1b[31m red", "stop"))


def test_invalid_utf8_bytes_and_replacement_chars() -> None:
    text, reason = decode_utf8("héllo".encode())
    assert text == "héllo" and reason is None
    text, reason = decode_utf8(b"abc\xff\xfedef")
    assert text is None and reason is not None and "byte 3" in reason
    assert encoding_problem("bad \ud800 surrogate") is not None
    assert encoding_problem("mid \ufffd text") is not None
    # A cut at max_tokens may split a multi-byte character: a trailing U+FFFD is tolerated then only.
    assert encoding_problem("cut at the end \ufffd", truncated=True) is None
    assert encoding_problem("cut at the end \ufffd", truncated=False) is not None


@pytest.mark.parametrize(
    ("reason", "ok"), [("length", True), ("stop", True), (None, False), ("abort", False)]
)
def test_finish_reasons(reason: str | None, ok: bool) -> None:
    assert (finish_reason_problem(reason) is None) is ok


def test_expect_is_optional_and_checked_when_given() -> None:
    assert text_problems(" 12+7 = 20", "length") == []
    problems = text_problems(" 12+7 = 20", "length", expect="19")
    assert len(problems) == 1 and "expected '19'" in problems[0]
