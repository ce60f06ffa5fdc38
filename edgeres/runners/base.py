"""One interface for every inference backend, in the manner of Polygraphy's runners.

A :class:`Runner` is a context manager: ``activate()`` loads the model (builds the
ONNX Runtime session, moves the module to its device), ``infer()`` turns a float32
NCHW batch into float32 logits, ``deactivate()`` lets it go. Which backend runs a
model is the business of :mod:`edgeres.runners.registry`, which imports the backend
modules (and their heavy packages: torch, onnxruntime, tensorrt) only when a runner is
made, so ``import edgeres.runners`` stays light.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeres.errors import EdgeresError, UsageError
from edgeres.runners import registry
from edgeres.runners.registry import ENGINE_SUFFIXES

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "Runner", "make_runner"]

BACKENDS: tuple[str, ...]  # ("auto", *backend_names()), read from the registry by __getattr__
Shape = tuple[int | None, ...]
_FLOAT32 = np.dtype(np.float32)


class Runner(abc.ABC):
    """Runs one classifier: ``infer(float32 NCHW batch) -> float32 (N, classes) logits``."""

    #: Backend name: "torch", "onnxruntime", "tensorrt".
    name: str = "runner"

    def __init__(self) -> None:
        self._active = False
        self._accepted_shape: tuple[int, ...] | None = None

    # -- lifetime ---------------------------------------------------------------------------------
    def activate(self) -> Runner:
        """Load the model; idempotent. Returns the runner for chaining."""
        if not self._active:
            self._accepted_shape = None
            self._activate()
            self._active = True
        return self

    def deactivate(self) -> None:
        """Release the model; idempotent."""
        if self._active:
            self._active = False
            self._accepted_shape = None
            self._deactivate()

    @property
    def is_active(self) -> bool:
        return self._active

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    # -- description ------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def input_name(self) -> str: ...

    @property
    @abc.abstractmethod
    def input_shape(self) -> Shape:
        """(N, C, H, W); None marks a dynamic dimension."""

    @property
    @abc.abstractmethod
    def device(self) -> str:
        """Where it runs: cpu, cuda, cuda:1, ..."""

    @property
    @abc.abstractmethod
    def precision(self) -> str:
        """Its arithmetic: fp32, fp16, int8."""

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision})"

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<{type(self).__name__} {self.describe()}, {state}>"

    # -- inference --------------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits (float32, shape (N, classes)) for a float32 NCHW batch."""
        if not self._active:
            raise EdgeresError(
                f"{self.name} runner is not active; use it in a `with` block or call activate()"
            )
        batch = self._check_batch(batch)
        out = np.asarray(self._infer(batch), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != batch.shape[0]:
            raise EdgeresError(
                f"{self.name} model returned shape {tuple(out.shape)} for a batch of {batch.shape[0]}; "
                "a classifier must return (N, classes) logits"
            )
        return out

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        # The checks cost microseconds a call, which show on a 0.3 ms model: a batch of the shape
        # last accepted, already float32 and contiguous, needs none of them again.
        if (
            type(batch) is np.ndarray
            and batch.shape == self._accepted_shape
            and batch.dtype == _FLOAT32
            and batch.flags.c_contiguous
        ):
            return batch
        if not isinstance(batch, np.ndarray) or batch.ndim != 4:
            shape = getattr(batch, "shape", type(batch).__name__)
            raise UsageError(f"a batch must be a 4-D NCHW numpy array, got {shape}")
        if not np.issubdtype(batch.dtype, np.floating):
            raise UsageError(f"a batch must hold floats (normalized pixels), got {batch.dtype}")
        expected = self.input_shape
        for got, want in zip(batch.shape, expected, strict=False):
            if want is not None and got != want:
                raise UsageError(
                    f"batch shape {tuple(batch.shape)} does not fit "
                    f"the model's input {format_shape(expected)}"
                )
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._accepted_shape = batch.shape
        return batch

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray: ...


def format_shape(shape: Sequence[int | str | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def make_runner(
    source: str | os.PathLike[str] | nn.Module,
    backend: str = "auto",
    *,
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "fp32",
    providers: Sequence[str] | None = None,
    arch: str | None = None,
) -> Runner:
    """A runner for ``source``, an ``nn.Module`` or a file, chosen by ``backend``.

    With ``backend="auto"``: ``.onnx`` runs on ONNX Runtime, ``.engine``/``.plan``/``.trt``
    on TensorRT, an ``nn.Module`` or any other file (checkpoint, TorchScript, ``.pt2``,
    state_dict with ``arch``) on PyTorch: see :func:`edgeres.runners.registry.backend_for_file`.
    The runner is returned inactive.
    """
    registry.check_choice(backend)
    owner: str | None = None
    if not isinstance(source, (str, os.PathLike)):
        spec = registry.module_backend(backend)
        what: Any = source
    else:
        what = Path(source)
        if not what.exists():
            raise UsageError(f"model file '{what}' does not exist")
        if what.is_dir():
            raise UsageError(f"'{what}' is a folder; give the model file (.pt, .onnx, .engine)")
        owner = registry.owner_of(what)
        spec = registry.get_backend(registry.backend_for_file(what) if backend == registry.AUTO else backend)
    args = registry.RunnerArgs(
        what,
        device=spec.device_for(device),
        threads=threads,
        precision=precision,
        providers=providers,
        arch=arch,
        owner=owner,
    )
    return spec.create(args)


def __getattr__(name: str) -> Any:
    if name == "BACKENDS":  # what make_runner accepts, read from the registry each time
        return registry.backend_choices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
