"""The timing loops: one runner timed call by call (latency mode), or several in flight (throughput mode).

Warm-up lasts at least ``warmup`` calls and ``warmup_ms`` milliseconds; timing lasts at least
``iters`` calls and ``duration`` seconds (either may be absent), as trtexec's ``--warmUp``,
``--iterations`` and ``--duration`` do. The garbage collector is paused while timing.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Timing", "time_runner", "time_streams"]


@dataclass(frozen=True)
class Timing:
    """Per-call times (ms), the GPU compute times where the runner has them, and the wall time (s)."""

    times_ms: list[float]
    compute_ms: list[float] | None
    wall_s: float


def _warm_up(runner: Any, x: np.ndarray, runs: int, ms: float) -> None:
    end = time.perf_counter() + ms / 1000.0
    done = 0
    while done < runs or time.perf_counter() < end:
        runner.infer(x)
        done += 1


@contextmanager
def _gc_paused() -> Iterator[None]:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _loop(runner: Any, x: np.ndarray, iters: int, deadline: float | None) -> tuple[list[float], list[float]]:
    times: list[float] = []
    compute: list[float] = []
    has_compute = hasattr(runner, "compute_ms")
    while True:
        start = time.perf_counter()
        runner.infer(x)
        end = time.perf_counter()
        times.append((end - start) * 1000.0)
        if has_compute and runner.compute_ms is not None:
            compute.append(float(runner.compute_ms))
        if len(times) >= iters and (deadline is None or end >= deadline):
            return times, compute


def time_runner(runner: Any, x: np.ndarray, settings: Any) -> Timing:
    """Warm up, then time each ``infer`` call until both floors (iterations, duration) are reached."""
    _warm_up(runner, x, settings.warmup, settings.warmup_ms)
    with _gc_paused():
        start = time.perf_counter()
        deadline = None if settings.duration is None else start + settings.duration
        times, compute = _loop(runner, x, settings.iters or 1, deadline)
        wall = time.perf_counter() - start
    return Timing(times, compute if len(compute) == len(times) else None, wall)


def time_streams(runners: Sequence[Any], x: np.ndarray, settings: Any) -> Timing:
    """Each runner in its own thread, all timed over the same interval; the iteration floor is shared.

    The wall time runs from the moment all streams start to the moment the last one ends, so
    ``images / wall`` is the aggregate throughput.
    """
    for runner in runners:
        _warm_up(runner, x, settings.warmup, settings.warmup_ms)
    per_stream = max(1, math.ceil((settings.iters or 1) / len(runners)))
    barrier = threading.Barrier(len(runners) + 1)
    out: list[tuple[list[float], list[float]] | None] = [None] * len(runners)
    errors: list[BaseException] = []
    deadline_box: list[float | None] = [None]

    def work(i: int) -> None:
        barrier.wait()
        try:
            out[i] = _loop(runners[i], x, per_stream, deadline_box[0])
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(runners))]
    with _gc_paused():
        for t in threads:
            t.start()
        start = time.perf_counter()
        deadline_box[0] = None if settings.duration is None else start + settings.duration
        barrier.wait()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    times = [v for r in out if r is not None for v in r[0]]
    compute = [v for r in out if r is not None for v in r[1]]
    return Timing(times, compute if len(compute) == len(times) else None, wall)
