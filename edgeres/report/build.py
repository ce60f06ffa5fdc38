"""Load the results and write report.md, report.json and report.html into one folder.

The folder is checked first (changing nothing), everything is rendered in memory, and
then each file is written atomically. When a write fails, the files this call wrote are removed again
(and the folder, when this call made it), so a failed report leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from edgeres.errors import UsageError
from edgeres.report.combine import combine
from edgeres.report.data import ReportData, ReportPaths
from edgeres.report.inputs import expand_sources, read_source

__all__ = ["build_report", "check_out_dir", "load_results", "prepare_out_dir"]

log = logging.getLogger(__name__)

FILES = ("report.md", "report.json", "report.html")


def load_results(sources: Sequence[str | os.PathLike[str]], *, title: str | None = None) -> ReportData:
    """Read the eval, bench and quantize JSON files (or folders of them) into one ReportData."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources:
        raise UsageError(
            "no results given: pass the JSON files written by edgeres eval, bench or quantize --json, "
            "or a folder of them"
        )
    files = expand_sources(sources)
    loaded = [item for path, explicit in files if (item := read_source(path, explicit=explicit)) is not None]
    if not loaded or not any(item.facts for item in loaded):
        names = ", ".join(str(s) for s in sources)
        raise UsageError(
            f"no results in {names}: expected JSON files written by edgeres eval, bench or quantize --json"
        )
    data = combine(loaded, title=title)
    if not any(v.accuracy is not None or any(r.ok for r in v.latency) for v in data.variants):
        names = ", ".join(str(s) for s in sources)
        raise UsageError(
            f"no usable results in {names}: no accuracy was recorded and every benchmark row failed"
        )
    return data


def check_out_dir(out_dir: str | os.PathLike[str]) -> None:
    """Fail early, changing nothing, when ``out_dir`` cannot be a writable folder."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder '{out}' is a file; choose another folder with -o/--out")
    existing = out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(
            f"cannot create output folder '{out}' ('{existing}' is a file); choose another with -o/--out"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == out.absolute() else f"cannot be made in '{existing}'"
        raise UsageError(f"output folder '{out}' {what}; choose another with -o/--out")


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> tuple[Path, bool]:
    """Make sure ``out_dir`` is a writable folder; returns it and whether it was created here."""
    out = Path(out_dir)
    check_out_dir(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise UsageError(
            f"cannot create output folder '{out}' ({reason}); choose another with -o/--out"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"output folder '{out}' is not writable; choose another with -o/--out")
    return out, created


def build_report(
    sources: Sequence[str | os.PathLike[str]] | ReportData,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> ReportPaths:
    """Write report.md, report.json and report.html for ``sources`` into ``out_dir``.

    ``sources`` are result files or folders (see :func:`load_results`), or a ReportData
    already loaded. Without matplotlib the HTML has tables only (a warning is logged).
    """
    from edgeres.atomic import write_text_atomic
    from edgeres.report.markdown import render_markdown
    from edgeres.report.plots import make_plots, matplotlib_available
    from edgeres.report.render_html import render_html

    check_out_dir(out_dir)
    if isinstance(sources, ReportData):
        data = replace(sources, title=title) if title else sources
    else:
        data = load_results(sources, title=title)
    if matplotlib_available():
        plots = make_plots(data)
        why = None
    else:
        plots = None
        why = "No plots: matplotlib is not installed (pip install 'edgeres[demo]'); the tables have the data."
        log.warning("matplotlib is not installed: report.html has tables only; pip install 'edgeres[demo]'")
    texts = {
        "report.md": render_markdown(data),
        "report.json": json.dumps(data.to_dict(), indent=2) + "\n",
        "report.html": render_html(data, plots, why_no_plots=why),
    }
    out, created = prepare_out_dir(out_dir)
    written: list[Path] = []
    try:
        for name in FILES:
            write_text_atomic(out / name, texts[name])
            written.append(out / name)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    return ReportPaths(
        markdown=out / "report.md", json=out / "report.json", html=out / "report.html", data=data
    )
