"""`edgeres demo`: the whole story on the embedded digits, no download."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("edgeres-demo"),
    show_default=True,
    help="Folder for everything the demo writes.",
)
@click.option(
    "--arch", default="resnet20", show_default=True, help="A CIFAR-style net (see `edgeres models`)."
)
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads [default: all cores].")
@click.option("--force", is_flag=True, help="Train and run every stage again, even when up to date.")
@click.option("--no-progress", is_flag=True, help="No progress bars (the log lines stay).")
def demo_cmd(out: Path, arch: str, epochs: int, threads: int | None, force: bool, no_progress: bool) -> None:
    """Train, quantize, measure and report on data that ships with edgeres.

    Trains a small CIFAR-style ResNet on the handwritten digits embedded in
    scikit-learn (1,797 images, nothing to download), then runs the pipeline on it:
    export to ONNX, FP16 and INT8 variants, TensorRT engines where TensorRT and a GPU
    exist, accuracy on the images training held out, latency, and the report.
    Everything goes into OUT; stages that cannot run here are listed with the reason.
    About a minute on 2 CPU cores; a second run reuses what is up to date.

    \b
    Examples:
      edgeres demo
      edgeres demo --out /tmp/demo --threads 2
      edgeres demo --arch resnet32 --epochs 12 --force
    """
    from edgeres.demo import DemoSettings, run_demo
    from edgeres.pipeline import format_summary

    settings = DemoSettings(
        out=out, arch=arch, epochs=epochs, threads=threads, force=force, progress=not no_progress
    )
    result = run_demo(settings)
    trained = (
        f"trained {arch} for {epochs} epoch{'' if epochs == 1 else 's'} in {result.train_seconds:.0f} s"
        if result.trained
        else f"reused the trained {arch} in {result.checkpoint.parent}"
    )
    top1 = f", validation top-1 {100 * result.val_top1:.2f}%" if result.val_top1 is not None else ""
    click.echo(f"{trained}{top1}")
    click.echo(format_summary(result.pipeline))
    report = result.pipeline.report
    if report is not None:
        from edgeres.report import summary_table

        click.echo("")
        click.echo(summary_table(report.data))
        click.echo(f"\nreport: {report.html}  (also {report.markdown.name} and {report.json.name})")
    click.echo(f"demo finished in {result.seconds:.0f} s; everything is in {out}")
