"""Write files so that a reader never sees half of one: temporary file, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeres.errors import EdgeresError

__all__ = ["atomic_path", "check_writable", "write_bytes_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left as it
    was, so a failed run never leaves a half-written or clobbered artifact.
    """
    target = Path(target)
    directory = check_writable(target)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".tmp", dir=directory
        )
    except OSError as exc:  # a read-only or special file system: os.access can say yes and be wrong
        raise EdgeresError(
            f"cannot write in output folder '{directory}' ({exc.strerror or exc}); choose another -o path"
        ) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(target: str | os.PathLike[str]) -> Path:
    """The folder ``target`` would be written in; a one-line error when that cannot be done.

    Commands call it before long work, so a bad output path fails in a second, not after it.
    """
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise EdgeresError(f"'{target}' is a folder; give a file name to write")
    if not directory.is_dir():
        raise EdgeresError(f"output folder '{directory}' does not exist; create it or choose another -o path")
    if not os.access(directory, os.W_OK):
        raise EdgeresError(f"output folder '{directory}' is not writable; choose another -o path")
    return directory


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
