"""The fields of a result file, each checked for its type; an error names the field's path.

A file that states its kind is read strictly: every field its writer writes must be there
(null where the field allows it), so a field renamed on one side fails loudly instead of
reading as empty. A file of an older edgeres (no kind) is read leniently: a missing field is
its default, as the report always read those files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["FieldError", "Fields", "json_type"]

_MISSING: Any = object()


class FieldError(ValueError):
    """A field of the wrong type, or missing; ``describe()`` is the one-line reason."""

    def __init__(self, field: str, expected: str, value: Any = _MISSING) -> None:
        super().__init__(field)
        self.field, self.expected, self.value = field, expected, value

    def describe(self) -> str:
        if self.value is _MISSING:
            return f"field '{self.field}' is missing"
        return f"field '{self.field}' should be {self.expected}, not {json_type(self.value)}"


def json_type(value: Any) -> str:
    """What a JSON value is, in words, with a short excerpt of a scalar."""
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({json.dumps(value[:40])})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


class Fields:
    """One JSON object of a result file, ``where`` its path in the file (``"results[0]."``)."""

    def __init__(self, data: Any, where: str = "", *, strict: bool = True) -> None:
        if not isinstance(data, dict):
            raise FieldError(where.rstrip(".") or "(the file)", "an object", data)
        self.data: Mapping[str, Any] = data
        self.where = where
        self.strict = strict

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as it is (None when null); missing is an error when strict, else ``default``."""
        if key not in self.data:
            if self.strict:
                raise FieldError(self.where + key, "present")
            return default
        return self.data[key]

    def _fail(self, key: str, expected: str, value: Any) -> FieldError:
        return FieldError(self.where + key, expected, value)

    def number(self, key: str) -> float | None:
        x = self.raw(key)
        if x is None:
            return None
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise self._fail(key, "a number", x)
        return float(x)

    def integer(self, key: str, default: int | None = None) -> int | None:
        x = self.raw(key, default)
        if x is None:
            return None
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not float(x).is_integer():
            raise self._fail(key, "an integer", x)
        return int(x)

    def required_integer(self, key: str) -> int:
        x = self.integer(key)
        if x is None:
            raise self._fail(key, "an integer", None)
        return x

    def text(self, key: str, default: str | None = None) -> str | None:
        x = self.raw(key, default)
        if x is not None and not isinstance(x, str):
            raise self._fail(key, "a string", x)
        return x

    def required_text(self, key: str) -> str:
        x = self.text(key)
        if x is None:
            raise self._fail(key, "a string", None)
        return x

    def flag(self, key: str) -> bool:
        x = self.raw(key, False)
        if x is not None and not isinstance(x, bool):
            raise self._fail(key, "a boolean", x)
        return bool(x)

    def mapping(self, key: str) -> dict[str, Any]:
        """An object as plain data ({} when null, or missing from a lenient file)."""
        x = self.raw(key)
        if x is None:
            return {}
        if not isinstance(x, dict):
            raise self._fail(key, "an object", x)
        return dict(x)

    def sub(self, key: str) -> Fields:
        """A nested object, to read field by field ({} when null)."""
        return Fields(self.mapping(key), f"{self.where}{key}.", strict=self.strict)

    def items(self, key: str) -> list[Any]:
        x = self.raw(key)
        if x is None:
            return []
        if not isinstance(x, list):
            raise self._fail(key, "a list", x)
        return x

    def objects(self, key: str) -> list[Fields]:
        """A list of objects, each to read field by field."""
        return [
            Fields(x, f"{self.where}{key}[{i}].", strict=self.strict) for i, x in enumerate(self.items(key))
        ]

    def texts(self, key: str) -> tuple[str, ...]:
        items = self.items(key)
        for i, x in enumerate(items):
            if not isinstance(x, str):
                raise self._fail(f"{key}[{i}]", "a string", x)
        return tuple(items)

    def numbers(self, key: str) -> tuple[tuple[str, float], ...]:
        """An object of numbers, as (name, value) pairs in the file's order."""
        values = self.sub(key)
        out = []
        for name in values.data:
            x = values.number(name)
            if x is None:
                raise values._fail(name, "a number", None)
            out.append((str(name), x))
        return tuple(out)
