"""``edgeres report``: one model's FP32, FP16 and INT8 results in report.md, report.json and report.html.

    from edgeres.report import build_report
    paths = build_report(["eval_fp32.json", "eval_int8.json", "bench.json"], "report")
    print(summary_table(paths.data))

:func:`load_results` reads and combines the JSON files written by ``edgeres eval``,
``edgeres bench`` and ``edgeres quantize`` (``--json``); :func:`build_report` writes the
three files. The plots need matplotlib (the ``demo`` extra); without it the HTML has
tables only.
"""

from __future__ import annotations

from edgeres.report.build import build_report, load_results
from edgeres.report.data import (
    Accuracy,
    ClassAccuracy,
    ClassChange,
    Environment,
    Latency,
    ReportData,
    ReportPaths,
    Source,
    Variant,
)
from edgeres.report.tables import summary_table

__all__ = [
    "Accuracy",
    "ClassAccuracy",
    "ClassChange",
    "Environment",
    "Latency",
    "ReportData",
    "ReportPaths",
    "Source",
    "Variant",
    "build_report",
    "load_results",
    "summary_table",
]
