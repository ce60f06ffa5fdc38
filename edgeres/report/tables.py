"""The summary table as rows of strings, shared by the terminal, report.md and report.html.

One row per variant and place it ran (backend/device); a variant never benchmarked gets
one row with ``-`` for latency. A latency cell is ``median / p99 ms (ratio of medians to
FP32)``; a ``*`` marks a noisy measurement, a ``†`` a time that means little (FP16 on a CPU,
a tensorrt-layout INT8 model on a CPU), which gets no ratio. ``Δ top-1`` is the variant's
top-1 minus FP32's, in points: negative is a loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeres.report.data import Latency, ReportData, Variant

__all__ = ["CAVEAT_MARK", "Table", "fmt_ms", "fmt_pct", "legend", "summary_table", "table"]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    noisy: bool  # some cell carries the noisy mark
    #: The caveats of the cells marked ``†``, each once.
    caveats: tuple[str, ...] = ()


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 1000 else f"{x:.0f}"


def _size(v: Variant) -> str:
    return "-" if v.size_mb is None else f"{v.size_mb:.2f}"


CAVEAT_MARK = "†"


def signed(x: float, digits: int = 2) -> str:
    """``x`` with its sign, rounded to ``digits``: no change reads ``+0.00``, never ``-0.00``."""
    return f"{round(x, digits) + 0.0:+.{digits}f}"  # + 0.0 turns -0.0 into 0.0


def _change(v: Variant) -> str:
    """Top-1 minus FP32's, in points: ``-0.56`` is a loss."""
    if v.baseline:
        return "baseline"
    return "-" if v.drop is None else signed(-v.drop)


def _cell(row: Latency | None) -> str:
    if row is None:
        return "-"
    if not row.ok:
        return "failed"
    text = fmt_ms(row.headline_ms)
    if row.p99_ms is not None:
        text += f" / {fmt_ms(row.p99_ms)}"
    text += ("*" if row.noisy else "") + (CAVEAT_MARK if row.caveat else "")
    return text if row.ratio is None else f"{text} ({row.ratio:.2f}x)"


def _accuracy_cells(v: Variant, where: str) -> tuple[str, str, str]:
    """top-1, Δ top-1 and agreement for the row of ``where``: measured there when an eval was."""
    place = next((p for p in v.accuracy_on if p.where == where), None)
    if place is None:
        return fmt_pct(v.top1), _change(v), fmt_pct(v.agreement)
    change = "baseline" if v.baseline else "-" if place.drop is None else signed(-place.drop)
    return fmt_pct(place.accuracy.top1), change, fmt_pct(place.agreement)


def _places(v: Variant) -> list[str]:
    return list(dict.fromkeys(row.where for row in v.latency)) or ["-"]


def table(data: ReportData) -> Table:
    batches = data.batches
    header: tuple[str, ...] = ("variant", "precision", "file MB", "top-1", "Δ top-1 pts", "agree", "runs on")
    header = (*header, *(f"batch {b} median / p99 ms" for b in batches), "img/s")
    rows = []
    noisy = False
    caveats: dict[str, None] = {}
    for v in data.variants:
        for where in _places(v):
            cells = [v.label, v.precision, _size(v), *_accuracy_cells(v, where), where]
            ok = [row for row in v.latency if row.where == where]
            for b in batches:
                row = next((r for r in ok if r.batch == b), None)
                noisy = noisy or bool(row and row.ok and row.noisy)
                if row is not None and row.ok and row.caveat:
                    caveats[row.caveat] = None
                cells.append(_cell(row))
            best = max((r.throughput for r in ok if r.ok and r.throughput), default=None)
            cells.append("-" if best is None else f"{best:.1f}")
            rows.append(tuple(cells))
    return Table(header, tuple(rows), noisy, tuple(caveats))


def legend(t: Table) -> list[str]:
    """The lines that explain the table's marks and columns, shared by every rendering."""
    lines = [
        "Latency: median / p99 ms per call (host to host); in brackets the ratio of medians to FP32 "
        "at the same batch, backend and device (below 1 = faster). Δ top-1: the variant's top-1 minus "
        "FP32's, in points (negative = a loss). Agree: share of images where the variant predicts what "
        "FP32 predicts. File MB: the model file with its external data (graph and weights) as stored; "
        "an FP16 model keeps some ops in float32, so it is more than half of FP32's."
    ]
    if t.noisy:
        lines.append("* noisy: the time varied by more than 10% (cv); rerun on a quiet machine.")
    lines += [f"{CAVEAT_MARK} {c} (left out of the ratios)." for c in t.caveats]
    return lines


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
    lines += [f"{CAVEAT_MARK} {c}: left out of the ratios" for c in t.caveats]
    if any("x)" in c for r in t.rows for c in r):
        lines.append("(0.50x) = half the FP32 median latency at the same batch, backend and device")
    if any(r[4] not in ("baseline", "-") for r in t.rows):
        lines.append("Δ top-1 pts: top-1 minus FP32's, in points (negative = a loss)")
    return "\n".join(lines)
