"""Handing freed memory back to the operating system between long stages.

glibc keeps memory that Python, NumPy and PyTorch free in its heap for reuse, so a process
that works layer after layer on a few hundred MB at a time keeps the sum of its fragments
resident: learned rounding of a ResNet-50 at 224 held about 1.1 GB more after its layers than
before them, which bias correction then added to its own peak. ``malloc_trim`` releases the
free pages; elsewhere (macOS, musl, Windows) :func:`release_free_memory` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable

__all__ = ["release_free_memory"]


@functools.cache
def _trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return freed heap pages to the system; True where it could (glibc)."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
