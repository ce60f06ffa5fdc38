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
    ``throughput`` is images per second: ``batch / mean seconds``.
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
    ) -> BenchResult:
        s = summarize(times_ms)
        c = summarize(compute_ms) if compute_ms else None
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
            throughput=batch / (s.mean / 1000.0) if s.mean > 0 else None,
            cv=s.cv,
            noisy=s.cv > noisy_cv,
            compute_mean_ms=c.mean if c else None,
            compute_median_ms=c.median if c else None,
            compute_p99_ms=c.p99 if c else None,
            compute_min_ms=c.min if c else None,
            compute_max_ms=c.max if c else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 1000 else f"{x:.0f}"


def format_table(results: Sequence[BenchResult]) -> str:
    """A fixed-width table, one row per model and batch; a failed row shows its error."""
    if not results:
        return "no results"
    compute = any(r.compute_mean_ms is not None for r in results)
    head = ["model", "backend", "device", "prec", "batch", "iters", "mean ms", "median", "p90", "p95",
            "p99", "min", "max", "img/s", "cv"]  # fmt: skip
    if compute:
        head.append("gpu ms")
    rows: list[list[str]] = []
    errors: dict[int, str] = {}
    for i, r in enumerate(results):
        row = [r.model, r.backend, r.device, r.precision, str(r.batch)]
        if r.error is not None:
            errors[i] = r.error
            rows.append(row)
            continue
        row += [str(r.iterations)] + [
            _ms(v) for v in (r.mean_ms, r.median_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.min_ms, r.max_ms)
        ]
        row += [
            "-" if r.throughput is None else f"{r.throughput:.1f}",
            "-" if r.cv is None else f"{r.cv:.1%}",
        ]
        if compute:
            row.append(_ms(r.compute_mean_ms))
        rows.append(row)
    widths = [max([len(head[j])] + [len(row[j]) for row in rows if j < len(row)]) for j in range(len(head))]

    def line(cells: list[str]) -> str:
        out = [c.ljust(widths[j]) if j < 4 else c.rjust(widths[j]) for j, c in enumerate(cells)]
        return "  ".join(out).rstrip()

    lines = [line(head)]
    for i, row in enumerate(rows):
        lines.append(line(row) + (f"  error: {errors[i]}" if i in errors else ""))
    return "\n".join(lines)
