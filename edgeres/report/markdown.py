"""report.md: the summary table, per-variant details, the environment and the notes.

Every string that comes from the results (title, labels, class and layer names, paths,
notes) is written as text: ``<``, ``>`` and ``&`` escaped so that no HTML gets into the
page, ``|`` escaped in table cells; paths go into code spans, which show them literally.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from edgeres.report.changes import class_rows, flip_rows, flipped_images, rest_of_flips
from edgeres.report.data import Environment, ReportData
from edgeres.report.tables import fmt_pct, legend, table

__all__ = ["environment_lines", "render_markdown"]


#: Characters that start Markdown syntax inline: links and images ``[..](..)``, emphasis,
#: code, autolinks (``scheme:``), raw-HTML entities are handled by html.escape.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()!#~{}:])")
_WWW = re.compile(r"(?i)\b(www)\.")


def _text(text: str) -> str:
    """``text`` shown as it is: HTML and Markdown syntax escaped, on one line.

    A class named ``![](http://host/x.png)`` or ``[x](javascript:...)`` stays text: no image
    is fetched and no link is made; ``http:`` and ``www.`` are escaped so no autolink forms.
    """
    text = html.escape(text, quote=False).replace("\r", " ").replace("\n", " ")
    return _WWW.sub(r"\1\\.", _MD_SPECIAL.sub(r"\\\1", text))


def _md_cell(text: str) -> str:
    return _text(text).replace("|", "\\|")


def _code(text: str) -> str:
    """A code span showing ``text`` literally, whatever backticks it holds."""
    text = text.replace("\r", " ").replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return out


def environment_lines(env: Environment | None) -> list[tuple[str, str]]:
    """(name, value) pairs describing where the benchmarks ran."""
    if env is None:
        return [("environment", "unknown: no bench JSON among the results")]
    cpu = env.cpu_model or "unknown CPU"
    if env.cpu_count:
        cpu += f", {env.cpu_count} cores"
    pairs = [("CPU", cpu)]
    if env.cpu_features:
        pairs.append(("CPU features", ", ".join(env.cpu_features)))
    pairs.append(("GPU", "; ".join(env.gpus) if env.gpus else "none"))
    if env.libraries:
        pairs.append(("libraries", ", ".join(f"{k} {v}" for k, v in env.libraries)))
    if env.providers:
        pairs.append(("ONNX Runtime providers", ", ".join(env.providers)))
    if env.python or env.platform:
        pairs.append(("system", " / ".join(x for x in (f"Python {env.python}", env.platform) if x)))
    pairs.append(("threads", str(env.threads) if env.threads else "backend default (all cores)"))
    return pairs


def render_markdown(data: ReportData) -> str:
    t = table(data)
    lines = [f"# {_text(data.title)}", "", "## Summary", ""]
    lines += _md_table(t.header, t.rows)
    lines += [""] + [_text(line) for line in legend(t)]
    lines += ["", "## Variants", ""]
    for v in data.variants:
        facts = [f"model {_code(v.model)}", f"precision {_text(v.precision)}"]
        if v.target:
            facts.append(f"quantize target {_text(v.target)}")
        if v.accuracy:
            facts.append(
                f"top-1 {fmt_pct(v.accuracy.top1)}, top-5 {fmt_pct(v.accuracy.top5)} "
                f"on {v.accuracy.images} images"
            )
        if v.kept_float:
            facts.append("kept in float: " + ", ".join(_code(n) for n in v.kept_float))
        lines.append(f"- **{_text(v.label)}**: " + "; ".join(facts))
    changed = [v for v in data.variants if v.class_changes]
    if changed:
        lines += ["", "## Per-class accuracy change against FP32 (points)", ""]
        lines.append("The classes that changed most: change in points (images right / images of the class).")
        lines.append("")
        shown, rows = class_rows(changed)  # cells escaped: the class names come from the results
        if rows:
            lines += _md_table(("class", *(v.label for v in changed)), rows)
        if shown.rest:
            lines += ["", _text(shown.rest)]
    for v in data.variants:
        if v.flips:
            lines += ["", f"## Predictions changed: {_text(v.label)} against FP32", ""]
            lines.append(f"{flipped_images(v)} images predicted differently; the most frequent changes:")
            lines.append("")
            lines += _md_table(("FP32 predicted", f"{v.label} predicts", "images"), flip_rows(v))
            if (rest := rest_of_flips(v)) is not None:
                lines += ["", _text(rest)]
    sensitive = [v for v in data.variants if v.sensitivity]
    for v in sensitive:
        lines += ["", f"## Layer sensitivity: {_text(v.label)}", ""]
        lines.append("Top-1 agreement with FP32 gained when only this layer stays in float.")
        lines.append("")
        rows = [(name, f"{100 * gain:+.2f} pts") for name, gain in v.sensitivity]
        lines += _md_table(("layer", "agreement gained"), rows)
    lines += ["", "## How it was made", ""]
    lines += [f"- {_text(name)}: {_text(value)}" for name, value in data.provenance]
    lines += ["", "## Environment", ""]
    lines += [f"- {name}: {_text(value)}" for name, value in environment_lines(data.environment)]
    if data.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {_text(n)}" for n in data.notes]
    lines += ["", "## Sources", ""]
    lines += [f"- {_code(s.path)} ({s.kind})" for s in data.sources]
    return "\n".join(lines) + "\n"
