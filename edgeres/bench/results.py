"""Benchmark results: latency statistics, the printed table and the JSON report.

Latencies are in milliseconds. ``summarize`` uses numpy's default (linear)
percentile interpolation and the population standard deviation (``ddof=0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["NOISY_CV", "BenchResult", "LatencyStats", "format_table", "summarize"]

#: A run whose coefficient of variation (std / mean) is above this is too noisy to trust.
NOISY_CV = 0.10


@dataclass(frozen=True)
class LatencyStats:
    """Statistics of one series of per-iteration times, in milliseconds."""

    count: int
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float
    std: float

    @property
    def cv(self) -> float:
        """Coefficient of variation: std / mean (0 for a zero mean)."""
        return self.std / self.mean if self.mean > 0 else 0.0


def summarize(times_ms: Sequence[float] | np.ndarray) -> LatencyStats:
    """Mean, median, p90/p95/p99, min, max and std of ``times_ms`` (at least one value)."""
    t = np.asarray(times_ms, dtype=np.float64).ravel()
    if t.size == 0:
        raise ValueError("summarize() needs at least one time")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(t, [50, 90, 95, 99]))
    return LatencyStats(
        count=int(t.size),
        mean=float(t.mean()),
        median=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        min=float(t.min()),
        max=float(t.max()),
        std=float(t.std()),
    )


@dataclass(frozen=True)
class BenchResult:
    """One model at one batch size: its latency (host-to-host), or why it could not run.

    ``compute_*`` is the GPU time of the engine alone (TensorRT), None elsewhere.
    ``throughput`` is the images timed over the seconds spent timing them: ``batch / mean
    seconds`` with one stream, the aggregate of all streams with several. ``images_per_s``
    is the headline: ``batch / median seconds`` with one stream, ``throughput`` with several;
    ``ms_per_image`` is ``1000 / images_per_s``. ``streams`` is the number of requests in
    flight (1: latency mode). ``caveat`` says why a figure means little (e.g. FP16 on a CPU).
    """

    model: str
    backend: str
    device: str
    precision: str
    batch: int
    iterations: int = 0
    threads: int | None = None
    mean_ms: float | None = None
    median_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    throughput: float | None = None
    cv: float | None = None
    noisy: bool = False
    compute_mean_ms: float | None = None
    compute_median_ms: float | None = None
    compute_p99_ms: float | None = None
    compute_min_ms: float | None = None
    compute_max_ms: float | None = None
    error: str | None = None
    streams: int = 1
    ms_per_image: float | None = None
    images_per_s: float | None = None
    caveat: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def measured(
        cls,
        *,
        model: str,
        backend: str,
        device: str,
        precision: str,
        batch: int,
        threads: int | None,
        times_ms: Sequence[float],
        compute_ms: Sequence[float] | None = None,
        noisy_cv: float = NOISY_CV,
        streams: int = 1,
        wall_s: float | None = None,
        caveat: str | None = None,
    ) -> BenchResult:
        """``wall_s``: the seconds all streams were timed over (needed with several streams)."""
        s = summarize(times_ms)
        c = summarize(compute_ms) if compute_ms else None
        if streams > 1 and wall_s:
            throughput: float | None = batch * s.count / wall_s
            headline = throughput
        else:
            throughput = batch / (s.mean / 1000.0) if s.mean > 0 else None
            headline = batch / (s.median / 1000.0) if s.median > 0 else None
        return cls(
            model=model,
            backend=backend,
            device=device,
            precision=precision,
            batch=batch,
            iterations=s.count,
            threads=threads,
            mean_ms=s.mean,
            median_ms=s.median,
            p90_ms=s.p90,
            p95_ms=s.p95,
            p99_ms=s.p99,
            min_ms=s.min,
            max_ms=s.max,
            std_ms=s.std,
            throughput=throughput,
            cv=s.cv,
            noisy=s.cv > noisy_cv,
            compute_mean_ms=c.mean if c else None,
            compute_median_ms=c.median if c else None,
            compute_p99_ms=c.p99 if c else None,
            compute_min_ms=c.min if c else None,
            compute_max_ms=c.max if c else None,
            streams=streams,
            images_per_s=headline,
            ms_per_image=1000.0 / headline if headline else None,
            caveat=caveat,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 1000 else f"{x:.0f}"


def format_table(results: Sequence[BenchResult], ratios: Sequence[float | None] | None = None) -> str:
    """A fixed-width table, one row per model and batch; a failed row shows its error.

    The headline is the median latency per call with p99 beside it, then ms per image and
    images per second at that batch. ``ratios`` (one per row, see
    :func:`edgeres.bench.compare.ratios_to_fp32`) adds a ``vs fp32`` column.
    """
    if not results:
        return "no results"
    compute = any(r.compute_median_ms is not None for r in results)
    streams = any(r.streams > 1 for r in results)
    head = ["model", "backend", "device", "prec", "batch"]
    head += ["streams"] if streams else []
    head += ["iters", "median ms", "p99 ms", "ms/img", "img/s"]
    head += ["vs fp32"] if ratios is not None else []
    head += ["cv"] + (["gpu ms"] if compute else [])
    rows: list[list[str]] = []
    errors: dict[int, str] = {}
    for i, r in enumerate(results):
        row = [r.model, r.backend, r.device, r.precision, str(r.batch)] + (
            [str(r.streams)] if streams else []
        )
        if r.error is not None:
            errors[i] = r.error
            rows.append(row)
            continue
        row += [str(r.iterations), _ms(r.median_ms), _ms(r.p99_ms), _ms(r.ms_per_image)]
        row.append("-" if r.images_per_s is None else f"{r.images_per_s:.1f}")
        if ratios is not None:
            ratio = ratios[i]
            row.append("-" if ratio is None else f"{ratio:.2f}x" + ("*" if r.caveat else ""))
        row.append("-" if r.cv is None else f"{r.cv:.1%}")
        if compute:
            row.append(_ms(r.compute_median_ms))
        rows.append(row)
    widths = [max([len(head[j])] + [len(row[j]) for row in rows if j < len(row)]) for j in range(len(head))]

    def line(cells: list[str]) -> str:
        out = [c.ljust(widths[j]) if j < 4 else c.rjust(widths[j]) for j, c in enumerate(cells)]
        return "  ".join(out).rstrip()

    lines = [line(head)]
    for i, row in enumerate(rows):
        lines.append(line(row) + (f"  error: {errors[i]}" if i in errors else ""))
    return "\n".join(lines)
