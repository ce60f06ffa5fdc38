"""first_line: how every exception is quoted in a one-line error."""

from __future__ import annotations

import pytest

from edgeres.errors import EdgeresError, first_line


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("one", "one"),
        ("one\ntwo", "one"),
        ("  one  \ntwo", "one"),
        ("\n\n  one\ntwo", "one"),
        ("\x1b[31mred\x1b[0m text", "red text"),
        ("", "ValueError"),
        ("  \n \n", "ValueError"),
    ],
)
def test_first_non_blank_line_or_the_type_name(message: str, expected: str) -> None:
    assert first_line(ValueError(message)) == expected


def test_limit_cuts_the_line_not_the_type_name() -> None:
    exc = RuntimeError("x" * 400 + "\nmore")
    assert first_line(exc) == "x" * 300
    assert first_line(exc, limit=200) == "x" * 200
    assert first_line(exc, limit=None) == "x" * 400
    assert first_line(exc, limit=5, typed=True) == "RuntimeError: xxxxx"


def test_typed_puts_the_type_name_first() -> None:
    assert first_line(KeyError("k"), typed=True) == "KeyError: 'k'"
    assert first_line(EdgeresError("bad input\nmore"), typed=True) == "EdgeresError: bad input"
    assert first_line(OSError(), typed=True) == "OSError"
