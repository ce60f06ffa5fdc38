"""Checks that settings dataclasses share: a bad value is a :class:`~edgeres.errors.UsageError`."""

from __future__ import annotations

from edgeres.errors import UsageError

__all__ = ["check_choice"]


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise :class:`UsageError` unless ``value`` is one of ``choices``; ``name`` is the setting's."""
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
