"""The one place edgeres meets the ``tensorrt`` module: importing it, its version, its logger.

TensorRT keeps a single logger pointer for the whole process while any Builder, Runtime or
Refitter lives, so edgeres hands every one of them the same ``trt.ILogger``
(:func:`get_trt_logger`, after Polygraphy's). That logger forwards each message to
:data:`ROUTER`, pure Python: errors go to whoever is collecting in the current thread or
task (``with ROUTER.collect() as c``, so a failed build names its own error), warnings
become edgeres ``warning:`` lines once each, the rest is debug output.

Versions: edgeres needs TensorRT 10.3 or newer (JetPack 6.1 and 6.2 ship 10.3; 8.6 builds
implicit-batch networks and ignores strong typing). DLA: see :func:`dla_support`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from edgeres.errors import TENSORRT_INSTALL, EdgeresError, MissingDependencyError

__all__ = [
    "MIN_VERSION",
    "NOT_INSTALLED",
    "ROUTER",
    "Collector",
    "LogRouter",
    "check_version",
    "dla_support",
    "get_trt_logger",
    "import_tensorrt",
    "parse_version",
    "unsupported_reason",
]

log = logging.getLogger("edgeres.engine.tensorrt")

NOT_INSTALLED = f"TensorRT is not installed: {TENSORRT_INSTALL}"
#: The oldest TensorRT edgeres builds and runs with: JetPack 6.1/6.2's.
MIN_VERSION = (10, 3)

# ILogger.Severity: INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4.
_ERROR, _WARNING = 1, 2


# -- versions -------------------------------------------------------------------------------------
def parse_version(version: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` -> (10, 3, 0, 30); stops at the first part that is not a number ("11.0.0b1")."""
    numbers: list[int] = []
    for part in str(version).strip().split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.group() != part:
            break
    return tuple(numbers)


def unsupported_reason(version: str, has_io_tensor_api: bool) -> str | None:
    """Why this TensorRT is too old for edgeres, or None when it will do.

    ``has_io_tensor_api``: whether ``trt.ICudaEngine`` has ``num_io_tensors``, the
    name-based I/O API of TensorRT 10 that edgeres uses throughout.
    """
    parsed = parse_version(version)
    need = ".".join(map(str, MIN_VERSION))
    if len(parsed) < 2 or parsed[:2] < MIN_VERSION or not has_io_tensor_api:
        return (
            f"TensorRT {version or 'of unknown version'} is too old: edgeres needs TensorRT {need} or newer "
            "(JetPack 6.1 or later on a Jetson)"
        )
    return None


def check_version(trt: Any) -> None:
    """Raise :class:`EdgeresError` unless the imported ``trt`` module is TensorRT 10.3 or newer."""
    why = unsupported_reason(str(getattr(trt, "__version__", "")), _has_io_tensor_api(trt))
    if why is not None:
        raise EdgeresError(why)


def _has_io_tensor_api(trt: Any) -> bool:
    engine = getattr(trt, "ICudaEngine", None)
    return engine is not None and hasattr(engine, "num_io_tensors")


def dla_support(version: str) -> tuple[bool, str]:
    """(True, "weak" or "strong"): how edgeres builds for the DLA with this TensorRT; (False, why) if not.

    From NVIDIA's "Working with DLA" (TensorRT 11.4.1): 10.7 was the last 10.x release with
    DLA; 11.0 to 11.3 have none; 11.4.0 has it only on Windows on ARM; 11.4.1 has it on Jetson
    AGX Orin with JetPack 7.2.2 or later, strongly typed. Strongly typed DLA builds are
    documented only for 11.x, so on 10.3 to 10.7 edgeres builds as trtexec does: weakly typed,
    FP16 (and INT8 for a Q/DQ model) allowed by builder flags.
    """
    v = parse_version(version)
    if len(v) < 2:
        return False, f"TensorRT {version} has an unknown version, so edgeres cannot tell whether it has DLA"
    major_minor, patch = v[:2], (v[2] if len(v) > 2 else 0)
    if MIN_VERSION <= major_minor <= (10, 7):
        return True, "weak"
    if major_minor[0] == 10 and major_minor > (10, 7):
        return False, f"TensorRT {version} has no DLA (10.7 was the last 10.x release with it)"
    if major_minor[0] == 11 and (major_minor < (11, 4) or (major_minor == (11, 4) and patch < 1)):
        return False, (
            f"TensorRT {version} has no DLA on Jetson (11.4.1 brings it back on AGX Orin with JetPack 7.2.2+)"
        )
    if major_minor >= (11, 4):
        return True, "strong"
    return False, f"TensorRT {version} is too old for edgeres"


# -- importing ------------------------------------------------------------------------------------
def import_tensorrt(*, check: bool = True) -> Any:
    """The ``tensorrt`` module, checked to be 10.3 or newer; :class:`MissingDependencyError` without it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError(NOT_INSTALLED) from exc
    if check:
        check_version(tensorrt)
    return tensorrt


# -- logging --------------------------------------------------------------------------------------
@dataclass
class Collector:
    """TensorRT's errors and warnings while one build or one engine load is going on."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def reason(self, default: str, *, first: bool = False) -> str:
        """The first or last error, else ``default``."""
        if not self.errors:
            return default
        return self.errors[0] if first else self.errors[-1]


class LogRouter:
    """Sends each TensorRT message to the collectors of the thread or task that is using TensorRT.

    ``collect()`` pushes a :class:`Collector` for the current context (a contextvar, so
    threads and asyncio tasks each have their own stack). A message from a thread that
    collects nothing (TensorRT's own worker threads) goes to the one collector active in
    the process when there is exactly one, else only to the log.
    """

    def __init__(self) -> None:
        self._stack: contextvars.ContextVar[tuple[Collector, ...]] = contextvars.ContextVar(
            f"edgeres_trt_collectors_{id(self)}", default=()
        )
        self._lock = threading.Lock()
        self._active: list[Collector] = []
        self._warned: set[str] = set()

    @contextlib.contextmanager
    def collect(self) -> Iterator[Collector]:
        collector = Collector()
        token = self._stack.set((*self._stack.get(), collector))
        with self._lock:
            self._active.append(collector)
        try:
            yield collector
        finally:
            self._stack.reset(token)
            with self._lock:
                self._active.remove(collector)

    def _targets(self) -> tuple[Collector, ...]:
        mine = self._stack.get()
        if mine:
            return mine[-1:]
        with self._lock:
            return tuple(self._active) if len(self._active) == 1 else ()

    def emit(self, severity: int, msg: str) -> None:
        """Route one message; ``severity`` as TensorRT numbers it (0 internal error .. 4 verbose)."""
        text = " ".join(str(msg).split())
        if severity <= _ERROR:
            for c in self._targets():
                c.errors.append(text)
            log.debug("TensorRT error: %s", text)
        elif severity == _WARNING:
            for c in self._targets():
                c.warnings.append(text)
            with self._lock:
                first = text not in self._warned
                self._warned.add(text)
            if first:
                log.warning("TensorRT: %s", text)
        else:
            log.debug("TensorRT: %s", text)


#: The process-wide router behind :func:`get_trt_logger`.
ROUTER = LogRouter()
_LOGGER: Any = None
_LOGGER_LOCK = threading.Lock()


def get_trt_logger(trt: Any) -> Any:
    """The one ``trt.ILogger`` of this process (created on first use), forwarding to :data:`ROUTER`."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is not None:
            return _LOGGER

        class _Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: Any, msg: str) -> None:
                # TensorRT calls this from C++ (noexcept): never let an exception out
                with contextlib.suppress(Exception):
                    ROUTER.emit(int(severity), msg)

        _LOGGER = _Logger()
        return _LOGGER
