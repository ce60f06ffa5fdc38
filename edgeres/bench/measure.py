"""Measure a model's latency on this machine, batch size by batch size.

Models and batch sizes are timed one at a time, each runner closed before the next is made,
so no idle session (ONNX Runtime's intra-op threads spin after each run) competes with the
one being timed. Each timed iteration is one :meth:`Runner.infer` call between two
``time.perf_counter()`` readings: host array in, host logits out ("end-to-end",
copies included). A runner with ``compute_ms`` (TensorRT) also reports the GPU time
of the engine alone, measured with CUDA events. A model that fails to load, or a
batch size it cannot take, becomes a result row with the error; the other rows
are still measured.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.bench.results import BenchResult
from edgeres.errors import EdgeresError, UsageError, first_line
from edgeres.runners import registry

__all__ = ["DEFAULT_DURATION_S", "DEFAULT_WARMUP_MS", "BenchSettings", "benchmark", "stream_threads"]

#: bench's defaults, trtexec's: 200 ms of warm-up, then at least 3 s of timing.
DEFAULT_WARMUP_MS = 200.0
DEFAULT_DURATION_S = 3.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchSettings:
    """What to measure: batch sizes, warm-up, and how long to time.

    Warm-up lasts at least ``warmup`` runs and ``warmup_ms`` milliseconds; timing lasts at
    least ``iters`` runs and ``duration`` seconds (None: no minimum; one of them is needed).
    The command line's defaults are time-based (:data:`DEFAULT_WARMUP_MS`,
    :data:`DEFAULT_DURATION_S`). ``streams`` > 1 is throughput mode: that many runners, each
    in its own thread with its share of ``threads``, timed together. ``precision``
    (fp32/fp16) applies to the torch backend on CUDA.
    """

    batches: tuple[int, ...] = (1,)
    warmup: int = 10
    iters: int | None = 100
    duration: float | None = None
    warmup_ms: float = 0.0
    streams: int = 1
    threads: int | None = None
    backend: str = "auto"
    device: str = "cpu"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not self.batches:
            raise UsageError("give at least one batch size, e.g. --batch 1,8,32")
        for b in self.batches:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise UsageError(f"batch sizes must be positive integers, got {b!r}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, got {self.warmup}")
        if self.iters is None and self.duration is None:
            raise UsageError("give --iters N or --duration SECONDS")
        if self.iters is not None and self.iters < 1:
            raise UsageError(f"--iters must be at least 1, got {self.iters}")
        if self.duration is not None and not self.duration > 0:
            raise UsageError(f"--duration must be a positive number of seconds, got {self.duration}")
        if not self.warmup_ms >= 0:
            raise UsageError(f"--warmup-ms must be 0 or more, got {self.warmup_ms}")
        if isinstance(self.streams, bool) or not isinstance(self.streams, int) or self.streams < 1:
            raise UsageError(f"--streams must be at least 1, got {self.streams}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        registry.check_choice(self.backend)
        kind, _, index = self.device.lower().partition(":")
        bad = kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit()))
        if bad and self.backend != "openvino":  # OpenVINO's runner checks its own devices (GPU.1, NPU, AUTO)
            raise UsageError(f"unknown device '{self.device}'; use cpu or cuda (cuda:N)")
        if self.precision not in ("fp32", "fp16"):
            raise UsageError(f"unknown precision '{self.precision}'; use fp32 or fp16")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batches"] = list(self.batches)
        return d


def benchmark(model_path: str | os.PathLike[str], settings: BenchSettings) -> list[BenchResult]:
    """One :class:`BenchResult` per batch size in ``settings`` for the model at ``model_path``."""
    name = Path(model_path).name
    try:
        source, input_size = _prepare(Path(model_path), settings)
    except EdgeresError as exc:
        return [
            _failed(name, _guess_backend(Path(model_path), settings), settings, b, exc)
            for b in settings.batches
        ]
    return [_measure_batch(name, source, input_size, settings, b) for b in settings.batches]


def _guess_backend(path: Path, settings: BenchSettings) -> str:
    if settings.backend != registry.AUTO:
        return settings.backend
    return registry.backend_for_file(path)


def _prepare(path: Path, settings: BenchSettings) -> tuple[Any, tuple[int, int] | None]:
    """What make_runner gets (a loaded module for PyTorch files, else the path) and the input (H, W).

    A PyTorch model is loaded once, not once per batch size. The input size comes from the
    model's metadata; for ONNX and engines the runner's input shape wins where it is fixed.
    """
    from edgeres.loading import load_model

    if not path.exists():
        raise UsageError(f"model file '{path}' does not exist")
    if path.is_dir():
        raise UsageError(f"'{path}' is a folder; give the model file (.pt, .onnx, .engine)")
    backend = registry.get_backend(_guess_backend(path, settings))
    if backend.runs_modules and registry.owner_of(path) is None:
        loaded = load_model(path)
        return loaded.require_module(), loaded.meta.preprocessing.input_size
    if path.suffix.lower() == ".onnx":
        return path, load_model(path).meta.preprocessing.input_size
    return path, None


def _failed(name: str, backend: str, settings: BenchSettings, batch: int, exc: BaseException) -> BenchResult:
    message = first_line(exc, limit=None)
    if not isinstance(exc, EdgeresError):
        message = f"{type(exc).__name__}: {message}"
    spec = registry.REGISTRY.get(backend)
    return BenchResult(
        model=name,
        backend=backend,
        device=settings.device if spec is None else spec.device_for(settings.device),
        precision=settings.precision,
        batch=batch,
        threads=settings.threads,
        error=message,
    )


def _input_shape(runner: Any, batch: int, input_size: tuple[int, int] | None) -> tuple[int, int, int, int]:
    shape = tuple(runner.input_shape)
    n, c, h, w = (*shape, None, None, None, None)[:4]
    if n is not None and n != batch:
        raise UsageError(
            f"the model takes batches of {n} only, not {batch}; "
            "export or build it with a dynamic batch to measure other batch sizes"
        )
    if (h is None or w is None) and input_size is not None:
        h, w = h or input_size[0], w or input_size[1]
    if h is None or w is None:
        raise UsageError(
            "the model's input height and width are unknown; give a model with a fixed input size"
        )
    return batch, int(c or 3), int(h), int(w)


def _measure_batch(
    name: str, source: Any, input_size: tuple[int, int] | None, settings: BenchSettings, batch: int
) -> BenchResult:
    from edgeres.bench.compare import caveat_for
    from edgeres.bench.timing import time_runner, time_streams
    from edgeres.runners import make_runner

    backend = _guess_backend(Path(source) if isinstance(source, (str, os.PathLike)) else Path(""), settings)
    try:
        threads = stream_threads(settings.threads, settings.streams)
        runners = [
            make_runner(
                source,
                settings.backend,
                device=settings.device,
                threads=threads,
                precision=settings.precision,
            )
            for _ in range(settings.streams)
        ]
        runner = runners[0]
        backend = runner.name
        with contextlib.ExitStack() as stack:
            for r in runners:
                stack.enter_context(r)
            x = np.random.default_rng(0).standard_normal(
                _input_shape(runner, batch, input_size), dtype=np.float32
            )
            timed = (
                time_runner(runner, x, settings) if len(runners) == 1 else time_streams(runners, x, settings)
            )
            return BenchResult.measured(
                model=name,
                backend=runner.name,
                device=runner.device,
                precision=runner.precision,
                batch=batch,
                threads=settings.threads,
                times_ms=timed.times_ms,
                compute_ms=timed.compute_ms,
                streams=settings.streams,
                wall_s=timed.wall_s,
                caveat=caveat_for(source, runner.name, runner.device, runner.precision),
            )
    except Exception as exc:  # one failing batch or backend must not abort the rest of the benchmark
        log.debug("benchmark of %s at batch %d failed", name, batch, exc_info=True)
        return _failed(name, backend, settings, batch, exc)


def stream_threads(threads: int | None, streams: int) -> int | None:
    """Each stream's CPU threads: the total (``threads``, else every core) split between them."""
    if streams == 1:
        return threads
    return max(1, (threads or os.cpu_count() or 1) // streams)
