"""The one exception type for mistakes a user can fix.

The CLI prints an :class:`EdgeresError` as a single ``error: ...`` line and exits
with its ``exit_code``; any other exception is a bug and keeps its traceback.
:func:`first_line` is how any exception is quoted in such a line.
"""

from __future__ import annotations

import re


class EdgeresError(Exception):
    """A user-facing error: bad input, a missing file or package, a mismatch.

    The message says what is wrong and what to do about it, in one line.
    ``exit_code`` is 1 for a failed operation and 2 for a usage mistake.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(EdgeresError):
    """The command was called wrongly: an unknown name, a bad option value."""

    exit_code = 2


class MissingDependencyError(EdgeresError):
    """An optional package (TensorRT, an extra) is needed but not installed."""


#: How to install TensorRT: the one text build-engine's error, doctor, the runners and the README quote.
TENSORRT_INSTALL = 'pip install "edgeres[tensorrt]" (on a Jetson, use JetPack\'s TensorRT)'


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException, *, limit: int | None = 300, typed: bool = False) -> str:
    """``exc``'s message for a one-line report: its first non-blank line, stripped.

    Terminal colour codes are removed and the line is cut to ``limit`` characters (None: no
    limit). A blank message gives the exception's type name; ``typed=True`` puts the type
    name first anyway (``ValueError: the first line``), for errors that are not the user's.
    """
    lines = (line.strip() for line in _ANSI.sub("", str(exc)).splitlines())
    text = next((line for line in lines if line), "")[:limit]
    name = type(exc).__name__
    if not text:
        return name
    return f"{name}: {text}" if typed else text
