"""Writing and reading one result file: its ``kind`` and ``schema``, atomically, with one-line errors.

Every result file starts with ``"kind"`` (what it holds, e.g. ``"edgeres.eval"``) and
``"schema"`` (the version of its layout, an integer). A reader reads the schemas up to its
own; a newer file asks for a newer edgeres instead of being half read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar

from edgeres.errors import EdgeresError
from edgeres.records.fields import FieldError

__all__ = ["Record", "check_header", "header", "load_json", "parse", "read_record", "write_record"]


class Record(Protocol):
    #: What the file holds, e.g. ``"edgeres.eval"``; NAME is its short name in messages ("eval").
    KIND: ClassVar[str]
    NAME: ClassVar[str]
    #: The layout version this edgeres writes, and the newest it reads.
    SCHEMA: ClassVar[int]

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: Any, *, strict: bool = True) -> Self: ...


R = TypeVar("R", bound=Record)


def header(record: Record) -> dict[str, Any]:
    """The first two keys of every result file."""
    return {"kind": record.KIND, "schema": record.SCHEMA}


def write_record(path: str | os.PathLike[str], record: Record) -> None:
    """``record`` as indented JSON, written atomically (a reader never sees half of it)."""
    from edgeres.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(record.to_dict(), indent=2, default=str) + "\n")


def load_json(path: Path) -> Any:
    """The JSON of ``path``; a one-line error for a file that cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeresError(f"cannot read result file '{path}': {exc.__class__.__name__}") from None
    except json.JSONDecodeError as exc:
        raise EdgeresError(
            f"result file '{path}' is not valid JSON (line {exc.lineno}): corrupt or cut short"
        ) from None


def check_header(data: Any, cls: type[Record], path: Path) -> None:
    """That ``data`` says it is a ``cls`` file, of a schema this edgeres reads."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind != cls.KIND:
        said = f"holds '{kind}'" if isinstance(kind, str) else "does not say what it holds"
        raise EdgeresError(
            f"'{path}' {said}, not an edgeres {cls.NAME} result ({cls.KIND}); "
            f"give the file edgeres {cls.NAME} --json writes"
        )
    schema = data.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        what = "is missing" if schema is None else f"should be a whole number of at least 1, not {schema!r}"
        raise EdgeresError(f"{cls.NAME} result file '{path}' is malformed: field 'schema' {what}")
    if schema > cls.SCHEMA:
        raise EdgeresError(
            f"{cls.NAME} result file '{path}' has schema {schema}, newer than this edgeres reads "
            f"(up to {cls.SCHEMA}); upgrade edgeres to read it"
        )


def parse(cls: type[R], data: Any, path: Path, *, strict: bool = True) -> R:
    """``cls.from_dict(data)``; a bad field is a one-line error naming the file and the field."""
    try:
        return cls.from_dict(data, strict=strict)
    except FieldError as exc:
        raise EdgeresError(f"{cls.NAME} result file '{path}' is malformed: {exc.describe()}") from None


def read_record(path: str | os.PathLike[str], cls: type[R], data: Any = None) -> R:
    """The ``cls`` record in ``path`` (``data``: its JSON, when already loaded), checked field by field."""
    path = Path(path)
    if data is None:
        data = load_json(path)
    check_header(data, cls, path)
    return parse(cls, data, path)
