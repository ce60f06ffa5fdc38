"""Write files so that a reader never sees half of one: temporary file, then rename.

The temporary file sits beside its target as ``.NAME.edgeres-PID-RANDOM.tmp``. A process
killed in the middle (``kill -9``, power loss) cannot remove its own, so each new write
into a folder first removes the ones whose process is gone (or that are a day old).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from edgeres.errors import EdgeresError

__all__ = [
    "atomic_path",
    "check_writable",
    "remove_stale_temporaries",
    "write_bytes_atomic",
    "write_text_atomic",
]

#: The marker in every temporary name, followed by the creating process id.
_MARKER = ".edgeres-"
_TEMP_NAME = re.compile(r"^\..+\.edgeres-(\d+)-[A-Za-z0-9_]+(\.[A-Za-z0-9.]+)?$")
#: A temporary file older than this is stale even when its pid is alive again (pid reuse).
STALE_SECONDS = 24 * 3600


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left as it
    was, so a failed run never leaves a half-written or clobbered artifact.
    """
    target = Path(target)
    directory = check_writable(target)
    remove_stale_temporaries(directory)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}{_MARKER}{os.getpid()}-",
            suffix=suffix if suffix is not None else ".tmp",
            dir=directory,
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
    except BaseException as exc:
        reason = _machine_failure(exc, directory)  # before the unlink frees the space again
        tmp.unlink(missing_ok=True)
        if reason is not None:
            raise EdgeresError(f"cannot write '{target}': {reason}") from exc
        raise


#: The file system refused the bytes: full, over quota, read-only, not permitted.
_MACHINE_ERRNOS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space"}
_MACHINE_ERRNOS[errno.EFBIG] = "raise the file size limit (ulimit -f) or write elsewhere"
_MACHINE_ERRNOS.update(dict.fromkeys((errno.EROFS, errno.EACCES, errno.EPERM), "choose a writable folder"))


def _machine_failure(exc: BaseException, directory: Path) -> str | None:
    """Why writing failed when the machine, not the data, is to blame; else None.

    Writers such as torch.save report a full disk as a RuntimeError without an errno, so
    a failed write into a folder with (next to) no free space is reported as a full disk.
    """
    if isinstance(exc, EdgeresError) or not isinstance(exc, Exception):
        return None
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
        return f"{exc.strerror or os.strerror(exc.errno)}; {_MACHINE_ERRNOS[exc.errno]}"
    if isinstance(exc, (OSError, RuntimeError)):
        try:
            fs = os.statvfs(directory)
        except OSError:
            return None
        if fs.f_bavail * fs.f_frsize < _NEARLY_FULL:
            return f"{os.strerror(errno.ENOSPC)}; free some space"
        if _file_size_limit() is not None:  # torch.save's short write under ulimit -f: a RuntimeError
            return (
                f"the write stopped at the file size limit ({_file_size_limit()} bytes); raise it (ulimit -f)"
            )
    return None


def _file_size_limit() -> int | None:
    """The process's file size limit (RLIMIT_FSIZE) in bytes, or None when there is none."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


_NEARLY_FULL = 256 * 1024


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of edgeres writes in ``directory`` whose process is gone.

    Only names of edgeres's own pattern are touched; a file whose process still runs
    (another write in progress) is kept unless it is older than :data:`STALE_SECONDS`.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or _MARKER not in entry.name:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        pid = int(match.group(1))
        if _alive(pid) and now - info.st_mtime < STALE_SECONDS:
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def check_writable(target: str | os.PathLike[str]) -> Path:
    """The folder ``target`` would be written in; a one-line error when that cannot be done.

    Commands call it before long work, so a bad output path fails in a second, not after it.
    """
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise EdgeresError(f"'{target}' is a folder; give a file name to write")
    if target.exists() and not target.is_file():  # a device or a pipe: renaming onto it would replace it
        raise EdgeresError(f"'{target}' is not a regular file; give a file name to write")
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
