"""One pipeline run per output folder at a time: an exclusive lock on ``OUT/.edgeres.lock``.

The lock is an ``flock`` on the file, so the kernel drops it when the holding process
ends in any way (``kill -9`` included): a killed run never blocks the next one. The file
holds the holder's pid, which the refusal of a second run names.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from edgeres.errors import EdgeresError

__all__ = ["LOCK_NAME", "folder_lock"]

LOCK_NAME = ".edgeres.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` for the ``with`` block; a one-line error if taken."""
    import fcntl

    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise EdgeresError(f"cannot lock output folder '{folder}': {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            who = f"pid {holder}" if holder else "another process"
            raise EdgeresError(
                f"output folder '{folder}' is in use by another edgeres run ({who}); "
                "wait for it to finish or choose another -o"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing drops the lock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
