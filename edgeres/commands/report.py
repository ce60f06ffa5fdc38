"""One model's FP32, FP16 and INT8 results in one report: report."""

from __future__ import annotations

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
    results are grouped by model file; the FP32 model is the baseline for the
    accuracy drop, the agreement and the latency ratios. Writes report.md,
    report.json and report.html (self-contained: inline plots, no network
    needed; the plots need matplotlib, pip install 'edgeres[demo]').

    \b
    Examples:
      edgeres report eval_fp32.json eval_int8.json bench.json quant.json
      edgeres report results/ -o report --title "resnet20 on Jetson Orin"
      edgeres report eval_*.json bench.json -o out/r20
    """
    from edgeres.errors import UsageError
    from edgeres.report import build_report, summary_table

    if not results:
        raise UsageError(
            "no results given: pass the JSON files written by edgeres eval, bench or quantize --json, "
            "or a folder of them"
        )
    paths = build_report(results, out_dir, title=title)
    click.echo(summary_table(paths.data))
    for path in (paths.markdown, paths.json, paths.html):
        click.echo(f"wrote {path}")
