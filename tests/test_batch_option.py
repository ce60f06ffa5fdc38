"""`--batch` reads the same in bench and build-engine: a comma list of sizes, or MIN:OPT:MAX."""

from __future__ import annotations

import pytest

from edgeres.commands.options import parse_batch_sizes
from edgeres.errors import UsageError


@pytest.mark.parametrize(
    ("text", "sizes"),
    [("1,8,32", (1, 8, 32)), ("8, 1,8", (8, 1)), ("4", (4,)), ("1:8:32", (1, 8, 32)), ("2:2:2", (2,))],
)
def test_both_forms_give_the_sizes(text: str, sizes: tuple[int, ...]) -> None:
    assert parse_batch_sizes(text) == sizes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,x", "--batch takes positive integers separated by commas, like 1,8,32; got '1,x'"),
        ("0,4", "--batch takes positive integers separated by commas, like 1,8,32; got '0,4'"),
        ("1:8", "batch profile '1:8' must be MIN:OPT:MAX"),
        ("8:4:2", "needs MIN <= OPT <= MAX"),
    ],
)
def test_anything_else_is_one_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_batch_sizes(text)
    assert message in str(info.value)
