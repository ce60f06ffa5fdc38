"""Latency benchmarks: ``benchmark(model, BenchSettings(...))`` -> one :class:`BenchResult` per batch.

See docs/commands/bench.md for what is measured and how to get numbers worth comparing.
"""

from __future__ import annotations

from edgeres.bench.measure import BenchSettings, benchmark
from edgeres.bench.results import NOISY_CV, BenchResult, LatencyStats, format_table, summarize
from edgeres.records.bench import to_json

__all__ = [
    "NOISY_CV",
    "BenchResult",
    "BenchSettings",
    "LatencyStats",
    "benchmark",
    "format_table",
    "summarize",
    "to_json",
]
