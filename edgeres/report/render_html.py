"""report.html: one self-contained page, inline CSS and inline SVG plots, no script, no links out.

Every piece of text from the inputs (paths, labels, class and layer names) is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from edgeres.report.changes import class_rows, flip_rows, flipped_images, rest_of_flips
from edgeres.report.data import ReportData
from edgeres.report.markdown import environment_lines
from edgeres.report.plots import Plot
from edgeres.report.tables import fmt_pct, legend, table

__all__ = ["render_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.55rem; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.baseline td { font-weight: 600; }
table.text td, table.text th { text-align: left; white-space: normal; }
figure { margin: 1rem 0; } figcaption { font-weight: 600; margin-bottom: 0.3rem; }
svg.plot { max-width: 100%; height: auto; }
.wide { overflow-x: auto; }
p.missing { color: #555; font-style: italic; }
.note { color: #444; font-size: 0.9rem; } code { font-size: 0.85rem; }
"""


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = (), *, text: bool = False
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    cls = ' class="text"' if text else ""
    table = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def _plots(plots: Sequence[Plot] | None, why_none: str | None) -> list[str]:
    out = ["<h2>Plots</h2>"]
    if plots is None:
        out.append(f'<p class="missing">{escape(why_none or "No plots.")}</p>')
        return out
    for p in plots:
        out.append(f'<figure id="plot-{escape(p.name)}"><figcaption>{escape(p.title)}</figcaption>')
        if p.svg is not None:
            out.append(p.svg)  # made by matplotlib from escaped text; see plots._inline
        else:
            out.append(f'<p class="missing">{escape(p.reason or "No data.")}</p>')
        out.append("</figure>")
    return out


def _changes(data: ReportData) -> list[str]:
    """The classes that changed most and the most frequent prediction flips, as tables."""
    out: list[str] = []
    changed = [v for v in data.variants if v.class_changes]
    if changed:
        shown, rows = class_rows(changed)
        out.append("<h2>Per-class accuracy change against FP32 (points)</h2>")
        if rows:
            out.append(_table(("class", *(v.label for v in changed)), rows))
        if shown.rest:
            out.append(f'<p class="note">{escape(shown.rest)}</p>')
    for v in data.variants:
        if v.flips:
            out.append(f"<h2>Predictions changed: {escape(v.label)} against FP32</h2>")
            out.append(f'<p class="note">{flipped_images(v)} images predicted differently.</p>')
            out.append(_table(("FP32 predicted", f"{v.label} predicts", "images"), flip_rows(v)))
            if (rest := rest_of_flips(v)) is not None:
                out.append(f'<p class="note">{escape(rest)}</p>')
    return out


def render_html(data: ReportData, plots: Sequence[Plot] | None, *, why_no_plots: str | None = None) -> str:
    """The page; ``plots`` None (matplotlib missing) gives tables only and ``why_no_plots``."""
    t = table(data)
    by_label = {v.label: v.baseline for v in data.variants}
    classes = ["baseline" if by_label.get(row[0]) else "" for row in t.rows]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(data.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(data.title)}</h1>",
        "<h2>Summary</h2>",
        _table(t.header, t.rows, classes),
        *(f'<p class="note">{escape(line)}</p>' for line in legend(t)),
    ]
    parts += _plots(plots, why_no_plots)
    rows = []
    for v in data.variants:
        acc = v.accuracy
        rows.append(
            (
                v.label,
                v.model,
                v.target or "-",
                fmt_pct(v.top1),
                fmt_pct(acc.top5 if acc else None),
                str(acc.images) if acc else "-",
                ", ".join(v.kept_float) or "-",
            )
        )
    parts += [
        "<h2>Variants</h2>",
        _table(("variant", "model", "target", "top-1", "top-5", "images", "kept in float"), rows, text=True),
    ]
    parts += _changes(data)
    parts += [
        "<h2>How it was made</h2>",
        _table(("item", "value"), data.provenance, text=True),
        "<h2>Environment</h2>",
        _table(("item", "value"), environment_lines(data.environment), text=True),
    ]
    if data.notes:
        parts += ["<h2>Notes</h2>", "<ul>", *(f"<li>{escape(n)}</li>" for n in data.notes), "</ul>"]
    parts += ["<h2>Sources</h2>", "<ul>"]
    parts += [f"<li><code>{escape(s.path)}</code> ({escape(s.kind)})</li>" for s in data.sources]
    parts += ["</ul>", "</body></html>"]
    return "\n".join(parts) + "\n"
