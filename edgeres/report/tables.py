"""The summary table as rows of strings, shared by the terminal, report.md and report.html.

One row per variant and place it ran (backend/device); a variant never benchmarked gets
one row with ``-`` for latency. A latency cell is ``mean ms (ratio to FP32)``; a ``*``
marks a noisy measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeres.report.data import Latency, ReportData, Variant

__all__ = ["Table", "fmt_ms", "fmt_pct", "summary_table", "table"]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    noisy: bool  # some cell carries the noisy mark


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 1000 else f"{x:.0f}"


def _size(v: Variant) -> str:
    return "-" if v.size_mb is None else f"{v.size_mb:.2f}"


def _drop(v: Variant) -> str:
    if v.baseline:
        return "baseline"
    return "-" if v.drop is None else f"{v.drop:+.2f}"


def _cell(row: Latency | None) -> str:
    if row is None:
        return "-"
    if not row.ok:
        return "failed"
    text = fmt_ms(row.mean_ms) + ("*" if row.noisy else "")
    return text if row.ratio is None else f"{text} ({row.ratio:.2f}x)"


def _places(v: Variant) -> list[str]:
    return list(dict.fromkeys(row.where for row in v.latency)) or ["-"]


def table(data: ReportData) -> Table:
    batches = data.batches
    header: tuple[str, ...] = ("variant", "precision", "size MB", "top-1", "drop pts", "agree", "runs on")
    header = (*header, *(f"batch {b} ms" for b in batches), "img/s")
    rows = []
    noisy = False
    for v in data.variants:
        for where in _places(v):
            cells = [v.label, v.precision, _size(v), fmt_pct(v.top1), _drop(v), fmt_pct(v.agreement), where]
            ok = [row for row in v.latency if row.where == where]
            for b in batches:
                row = next((r for r in ok if r.batch == b), None)
                noisy = noisy or bool(row and row.ok and row.noisy)
                cells.append(_cell(row))
            best = max((r.throughput for r in ok if r.ok and r.throughput), default=None)
            cells.append("-" if best is None else f"{best:.1f}")
            rows.append(tuple(cells))
    return Table(header, tuple(rows), noisy)


def summary_table(data: ReportData) -> str:
    """The summary as fixed-width plain text, for the terminal."""
    t = table(data)
    widths = [max([len(t.header[j])] + [len(r[j]) for r in t.rows]) for j in range(len(t.header))]

    def line(cells: tuple[str, ...]) -> str:
        out = [c.ljust(widths[j]) if j in (0, 1, 6) else c.rjust(widths[j]) for j, c in enumerate(cells)]
        return "  ".join(out).rstrip()

    lines = [line(t.header), *(line(r) for r in t.rows)]
    if t.noisy:
        lines.append("* noisy: the time varied by more than 10%; rerun on a quiet machine")
    if any("x)" in c for r in t.rows for c in r):
        lines.append("(0.50x) = half the FP32 latency at the same batch, backend and device")
    return "\n".join(lines)
