"""One model's FP32, FP16 and INT8 results in one report: report."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("results", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "-o", "--out", "out_dir", default="report", show_default=True, metavar="DIR",
    help="Folder for report.md, report.json and report.html (made when missing).",
)  # fmt: skip
@click.option("--title", help="Title of the report [default: the architecture and the precisions].")
def report_cmd(results: tuple[str, ...], out_dir: str, title: str | None) -> None:
    """Compare the FP32, FP16 and INT8 variants of one model from their result files.

    RESULTS are the JSON files written with --json by `edgeres eval`, `edgeres
    bench` and `edgeres quantize`, or folders holding them (their *.json). The
    results are grouped by model file; the FP32 model is the baseline for
    Δ top-1 (negative = a loss), the agreement, the prediction flips and the
    latency ratios (of medians; the table shows median / p99 ms). Results of
    different models are refused: run the command once per model. Writes
    report.md, report.json and report.html (self-contained: inline plots, no
    network needed; the plots need matplotlib, pip install 'edgeres[demo]').

    \b
    Examples:
      edgeres report eval_fp32.json eval_int8.json bench.json quant.json
      edgeres report results/ -o report --title "resnet20 on Jetson Orin"
      edgeres report eval_*.json bench.json -o out/r20
      edgeres report r50/ -o report_r50 && edgeres report r18/ -o report_r18
    """
    from edgeres.errors import UsageError
    from edgeres.report import build_report, summary_table

    if not results:
        raise UsageError(
            "no results given: pass the JSON files written by edgeres eval, bench or quantize --json, "
            "or a folder of them"
        )
    from edgeres.commands.options import refuse_overwrite
    from edgeres.report.build import FILES
    from edgeres.report.inputs import expand_sources

    written = [(f"-o {out_dir}/{name}", Path(out_dir) / name) for name in FILES]
    # a folder's own earlier report.json is skipped as input, so rewriting it destroys nothing
    sources = [p for p, explicit in expand_sources(results) if explicit or p.name not in FILES]
    refuse_overwrite([*written, ("-o", out_dir)], [("result file", p) for p in sources])
    paths = build_report(results, out_dir, title=title)
    click.echo(summary_table(paths.data))
    for path in (paths.markdown, paths.json, paths.html):
        click.echo(f"wrote {path}")
