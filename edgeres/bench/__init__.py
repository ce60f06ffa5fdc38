"""Latency benchmarks: ``benchmark(model, BenchSettings(...))`` -> one :class:`BenchResult` per batch.

See docs/commands/bench.md for what is measured and how to get numbers worth comparing.
The names are imported on first use: :mod:`edgeres.records.bench` reads
:mod:`edgeres.bench.results`, so this package must not import the records back at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeres._lazy import lazy_exports

# The type checker's view of _EXPORTS (tests/test_lazy_exports.py keeps the two equal).
if TYPE_CHECKING:
    from edgeres.bench.measure import BenchSettings, benchmark  # noqa: F401
    from edgeres.bench.results import NOISY_CV, BenchResult, LatencyStats, format_table, summarize  # noqa: F401
    from edgeres.records.bench import to_json  # noqa: F401

_EXPORTS = {
    "NOISY_CV": "edgeres.bench.results",
    "BenchResult": "edgeres.bench.results",
    "BenchSettings": "edgeres.bench.measure",
    "LatencyStats": "edgeres.bench.results",
    "benchmark": "edgeres.bench.measure",
    "format_table": "edgeres.bench.results",
    "summarize": "edgeres.bench.results",
    "to_json": "edgeres.records.bench",
}

__all__ = [*_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
