"""The timing loops and the runner lifetimes of `edgeres.bench`, with a fake backend (no model needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgeres.bench import BenchResult, BenchSettings, benchmark
from edgeres.bench.compare import FP16_ON_CPU
from edgeres.bench.measure import stream_threads
from edgeres.bench.timing import time_runner, time_streams
from edgeres.runners import Runner
from edgeres.runners.registry import REGISTRY, RunnerArgs, register_backend


class FakeRunner(Runner):
    """Sleeps ``delay`` seconds per call (the GIL released, as ORT's run is); counts what is alive."""

    name = "fakebench"
    alive = 0
    most_alive_in_infer = 0
    lock = threading.Lock()

    def __init__(self, delay: float = 0.001, precision: str = "fp32", threads: int | None = None) -> None:
        super().__init__()
        self.delay, self._prec, self.threads, self.calls = delay, precision, threads, 0

    def _activate(self) -> None:
        with FakeRunner.lock:
            FakeRunner.alive += 1

    def _deactivate(self) -> None:
        with FakeRunner.lock:
            FakeRunner.alive -= 1

    input_name = "x"
    input_shape = (None, 3, 4, 4)
    device = "cpu"

    @property
    def precision(self) -> str:
        return self._prec

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        with FakeRunner.lock:
            FakeRunner.most_alive_in_infer = max(FakeRunner.most_alive_in_infer, FakeRunner.alive)
        self.calls += 1
        time.sleep(self.delay)
        return np.zeros((batch.shape[0], 10), np.float32)


def _create(args: RunnerArgs) -> FakeRunner:
    return FakeRunner(precision="fp16" if "fp16" in args.source.name else "fp32", threads=args.threads)


@pytest.fixture
def fake_backend() -> Iterator[None]:
    register_backend("fakebench", [".fakebench"], _create)
    FakeRunner.alive = FakeRunner.most_alive_in_infer = 0
    try:
        yield
    finally:
        del REGISTRY["fakebench"]


X = np.zeros((1, 3, 4, 4), np.float32)


def test_timing_runs_until_both_floors() -> None:
    with FakeRunner() as r:
        by_time = time_runner(r, X, BenchSettings(warmup=0, iters=2, duration=0.05))
        by_count = time_runner(r, X, BenchSettings(warmup=0, iters=40, duration=0.002))
    assert len(by_time.times_ms) > 2 and by_time.wall_s >= 0.05  # the duration outlasts 2 runs
    assert len(by_count.times_ms) == 40  # the count outlasts 2 ms


def test_warm_up_lasts_its_milliseconds_and_runs() -> None:
    with FakeRunner() as r:
        start = time.perf_counter()
        time_runner(r, X, BenchSettings(warmup=2, warmup_ms=40, iters=1))
        elapsed = time.perf_counter() - start
        assert elapsed >= 0.04 and r.calls > 2 + 1
    with FakeRunner() as r:
        time_runner(r, X, BenchSettings(warmup=5, warmup_ms=0, iters=1))
        assert r.calls == 5 + 1


def test_streams_run_in_flight_together() -> None:
    runners = [FakeRunner(delay=0.01) for _ in range(4)]
    for r in runners:
        r.activate()
    timed = time_streams(runners, X, BenchSettings(warmup=1, iters=4, duration=0.1))
    assert all(r.calls >= 2 for r in runners)  # every stream ran
    # four 10 ms requests in flight: about 400 calls/s, where one stream gives at most 100
    assert len(timed.times_ms) / timed.wall_s > 250
    row = BenchResult.measured(
        model="m", backend="fakebench", device="cpu", precision="fp32", batch=2, threads=None,
        times_ms=timed.times_ms, streams=4, wall_s=timed.wall_s,
    )  # fmt: skip
    assert row.throughput == pytest.approx(2 * len(timed.times_ms) / timed.wall_s)
    assert row.images_per_s == row.throughput and row.ms_per_image == pytest.approx(1000 / row.throughput)


def test_threads_are_split_between_streams() -> None:
    assert stream_threads(8, 1) == 8 and stream_threads(None, 1) is None
    assert stream_threads(8, 4) == 2 and stream_threads(3, 4) == 1


def test_one_runner_alive_while_timing_several_models(tmp_path: Path, fake_backend: None) -> None:
    """Timed one at a time, each closed before the next: no idle session competes with the timed one."""
    a, b = tmp_path / "a.fakebench", tmp_path / "b-fp16.fakebench"
    a.write_bytes(b"")
    b.write_bytes(b"")
    settings = BenchSettings(batches=(1, 2), warmup=1, iters=3)
    rows = [r for m in (a, b) for r in benchmark(m, settings)]
    assert [(r.model, r.batch, r.ok) for r in rows] == [
        ("a.fakebench", 1, True), ("a.fakebench", 2, True),
        ("b-fp16.fakebench", 1, True), ("b-fp16.fakebench", 2, True),
    ]  # fmt: skip
    assert FakeRunner.most_alive_in_infer == 1 and FakeRunner.alive == 0
    assert [r.caveat for r in rows] == [None, None, FP16_ON_CPU, FP16_ON_CPU]


def test_streams_through_benchmark(tmp_path: Path, fake_backend: None) -> None:
    model = tmp_path / "a.fakebench"
    model.write_bytes(b"")
    (row,) = benchmark(model, BenchSettings(warmup=1, iters=6, streams=3, threads=6))
    assert row.ok and row.streams == 3 and row.iterations >= 6
    assert FakeRunner.most_alive_in_infer == 3 and FakeRunner.alive == 0
