"""The report's plots as inline SVG strings, drawn with matplotlib (the ``demo`` extra).

matplotlib is imported inside :func:`make_plots`, and pyplot is never used: each plot is
a bare :class:`matplotlib.figure.Figure` saved to SVG, so no backend or global state is
touched. A plot whose data is missing comes back with the reason instead of an SVG.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeres.report.changes import class_rows
from edgeres.report.data import Latency, ReportData, Variant

__all__ = ["COLORS", "PLOT_NAMES", "Plot", "accuracy_range", "make_plots", "matplotlib_available"]

PLOT_NAMES = ("latency", "accuracy-latency", "per-class", "sensitivity", "sizes")
COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
_MAX_LAYERS = 15


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    svg: str | None = None
    reason: str | None = None  # why there is no plot


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def make_plots(data: ReportData) -> tuple[Plot, ...]:
    """Every plot, in PLOT_NAMES order; raises ImportError without matplotlib."""
    from matplotlib import rc_context

    colors = {v.key: COLORS[i % len(COLORS)] for i, v in enumerate(data.variants)}
    makers: list[tuple[str, str, Callable[[Any, ReportData, dict[str, str]], str | None]]] = [
        ("latency", "Latency per precision and batch", _latency),
        ("accuracy-latency", "Accuracy against latency", _accuracy_latency),
        ("per-class", "Per-class accuracy change against FP32", _per_class),
        ("sensitivity", "Per-layer sensitivity to INT8", _sensitivity),
        ("sizes", "Model sizes", _sizes),
    ]
    plots = []
    with rc_context(
        {
            "svg.fonttype": "none",  # text stays text: smaller, searchable, selectable
            "svg.hashsalt": "edgeres",  # the same ids on every run
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        for name, title, draw in makers:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(7.5, 3.6), layout="constrained")
            reason = draw(fig, data, colors)
            if reason is not None:
                plots.append(Plot(name, title, reason=reason))
                continue
            buf = io.StringIO()
            fig.savefig(
                buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
            )
            plots.append(Plot(name, title, svg=_inline(buf.getvalue(), name, title)))
    return tuple(plots)


def _inline(svg: str, prefix: str, title: str) -> str:
    """The bare <svg> element: no XML prolog, namespaces or metadata; ids unique per plot."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = re.sub(r'(\bid="|href="#|url\(#)([^")]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    from html import escape

    return svg.replace("<svg", f'<svg role="img" aria-label="{escape(title)}" class="plot"', 1)


def _t(text: str) -> str:
    """Text as matplotlib shows it literally: a '$' would start mathtext."""
    return text.replace("$", r"\$")


def _first_row(v: Variant, where: str | None) -> Latency | None:
    """The smallest batch measured, on ``where`` (backend/device) when the variant ran there."""
    rows = sorted((r for r in v.latency if r.ok), key=lambda r: (r.where != where, r.batch))
    return rows[0] if rows else None


def _latency(fig: Any, data: ReportData, colors: dict[str, str]) -> str | None:
    series = [(v, w) for v in data.variants for w in dict.fromkeys(r.where for r in v.latency if r.ok)]
    if not series:
        return "No latency: none of the results is a bench JSON with a row that ran (edgeres bench --json)."
    places = {w for _, w in series}
    batches = data.batches
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for i, (v, where) in enumerate(series):
        xs, ys, ratios = [], [], []
        for j, b in enumerate(batches):
            row = v.latency_at(b, where)
            if row is not None and row.ok and row.headline_ms is not None:
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                ys.append(row.headline_ms)
                ratios.append(row.ratio)
        label = _t(v.label if len(places) == 1 else f"{v.label} ({where})")
        bars = ax.bar(xs, ys, width * 0.95, label=label, color=colors[v.key])
        texts = ["" if r is None else f"{r:.2f}x" for r in ratios]
        ax.bar_label(bars, labels=texts, fontsize=7, padding=1)
    ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
    ax.set_ylabel("median latency (ms)")
    ax.legend(fontsize=8, frameon=False)
    return None


def _accuracy_latency(fig: Any, data: ReportData, colors: dict[str, str]) -> str | None:
    first = _first_row(data.baseline, None) if data.baseline is not None else None
    where = first.where if first is not None else None
    points = []
    for v in data.variants:
        row = _first_row(v, where)
        if v.top1 is not None and row is not None and row.headline_ms is not None:
            points.append((v, row))
    if not points:
        return (
            "No variant has both an accuracy (edgeres eval or quantize --eval) and a latency (edgeres bench)."
        )
    # A variant that never ran where FP32 did is plotted on its own backend and device, and
    # each point then names where it ran: a GPU time is not silently set against a CPU one.
    places = {row.where for _, row in points}
    ax = fig.add_subplot()
    for v, row in points:
        assert v.top1 is not None
        ax.scatter([row.headline_ms], [100 * v.top1], s=60, color=colors[v.key], zorder=3)
        shown = f"batch {row.batch}" if len(places) == 1 else f"{row.where}, batch {row.batch}"
        ax.annotate(
            _t(f"{v.label} ({shown})"),
            (row.headline_ms, 100 * v.top1),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    where_text = f" on {next(iter(places))}" if len(places) == 1 else ""
    ax.set_xlabel(f"median latency (ms){where_text}, smallest batch measured")
    low, high = accuracy_range(data, [100 * (v.top1 or 0.0) for v, _ in points])
    ax.set_ylim(low, high)
    ax.set_ylabel(f"top-1 accuracy (%), axis {low:.1f} to {high:.1f}")
    ax.grid(alpha=0.3)
    ax.margins(x=0.25)
    return None


def accuracy_range(data: ReportData, top1s: list[float]) -> tuple[float, float]:
    """The accuracy axis in %: from FP32 - max(2, 3 x the largest drop) to just above the best.

    A fixed floor of 2 points keeps a 0.5-point drop from filling the height as a cliff would.
    """
    base = data.baseline
    ref = 100 * base.top1 if base is not None and base.top1 is not None else max(top1s)
    drop = max([ref - t for t in top1s] + [0.0])
    low = max(0.0, ref - max(2.0, 3.0 * drop))
    high = min(100.0, max([*top1s, ref]) + 0.5)
    if high <= low:
        high = low + 1.0
    return low, high


def _per_class(fig: Any, data: ReportData, colors: dict[str, str]) -> str | None:
    changed = [v for v in data.variants if v.class_changes]
    if not changed:
        return (
            "No per-class comparison: it needs FP32 and another variant evaluated on the same images "
            "(edgeres eval MODEL --compare FP32.onnx --json FILE)."
        )
    shown, _ = class_rows(changed)
    names = list(shown.shown)
    ax = fig.add_subplot()
    width = 0.8 / len(changed)
    for i, v in enumerate(changed):
        by_name = {c.name: c.change for c in v.class_changes}
        xs = [j + (i - (len(changed) - 1) / 2) * width for j, n in enumerate(names) if n in by_name]
        ys = [by_name[n] for n in names if n in by_name]
        ax.bar(xs, ys, width * 0.95, label=_t(v.label), color=colors[v.key])
    ax.axhline(0, color="black", linewidth=0.8)
    rotate = 45 if max(len(n) for n in names) > 4 or len(names) > 12 else 0
    ax.set_xticks(
        range(len(names)), [_t(n) for n in names], rotation=rotate, ha="right" if rotate else "center"
    )
    ax.set_ylabel("accuracy change (points)")
    if shown.rest:
        rest = shown.rest.split(":")[0]  # "90 more classes": the details are in the tables
        ax.set_title(_t(f"the {len(names)} classes that changed most; {rest} in the tables"), fontsize=8)
    ax.legend(fontsize=8, frameon=False)
    return None


def _sensitivity(fig: Any, data: ReportData, colors: dict[str, str]) -> str | None:
    ranked = [v for v in data.variants if v.sensitivity]
    if not ranked:
        return (
            "No per-layer sensitivity: edgeres quantize measures it only with --max-drop, "
            "when INT8 drops more than allowed."
        )
    axes = fig.subplots(1, len(ranked), squeeze=False)[0]
    for ax, v in zip(axes, ranked, strict=True):
        top = list(v.sensitivity[:_MAX_LAYERS])[::-1]
        ax.barh([_t(n) for n, _ in top], [100 * g for _, g in top], color=colors[v.key])
        ax.set_title(_t(v.label), fontsize=9)
        ax.set_xlabel("agreement gained in float (points)")
        ax.tick_params(axis="y", labelsize=7)
    return None


def _sizes(fig: Any, data: ReportData, colors: dict[str, str]) -> str | None:
    sized = [v for v in data.variants if v.size_mb is not None]
    if not sized:
        return "No model sizes: none of the model files was found and no result recorded a size."
    ax = fig.add_subplot()
    bars = ax.barh(
        [_t(v.label) for v in sized][::-1],
        [v.size_mb or 0 for v in sized][::-1],
        color=[colors[v.key] for v in sized][::-1],
    )
    ax.bar_label(bars, labels=[f"{v.size_mb:.2f} MB" for v in sized][::-1], fontsize=8, padding=2)
    ax.set_xlabel("file size (MB)")
    ax.margins(x=0.2)
    return None
