"""The one exception type for mistakes a user can fix.

The CLI prints an :class:`EdgeresError` as a single ``error: ...`` line and exits
with its ``exit_code``; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


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
