"""``edgeres doctor``: check that this machine runs edgeres, and say what to install."""

from __future__ import annotations

import json

import click


@click.command("doctor")
@click.option("--quick", is_flag=True, help="Check the packages and the GPU only; build nothing.")
@click.option(
    "--require-tensorrt",
    is_flag=True,
    help="Fail when TensorRT or a CUDA GPU is missing (on a Jetson or GPU machine).",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    help="Keep the built models (ONNX, INT8, engines) in this new or empty folder.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the checks as JSON.")
def doctor_cmd(quick: bool, require_tensorrt: bool, keep: str | None, json_out: str | None) -> None:
    """Check that edgeres works here: versions, what is missing, and a small model end to end.

    Lists edgeres, Python, torch (with CUDA and the GPU it sees), onnx, onnxruntime and
    its providers, TensorRT and onnxconverter-common, saying what to install for anything
    missing. Then a small built-in resnet20 (random weights, nothing downloaded) is
    exported to ONNX and quantized to INT8, and each model runs on ONNX Runtime against
    PyTorch: largest logit difference, top-1 agreement, latency. Where TensorRT and a GPU
    exist, its FP32, FP16 and INT8 engines are built, run against ONNX Runtime and timed.
    About 15 seconds on 2 CPU cores, plus the engine builds.

    The exit status is 1, after the table and one error line, when a check failed: a
    missing required package, a failed build, or an agreement below the minimum.
    A missing TensorRT is not a failure unless --require-tensorrt is given.

    \b
    Examples:
      edgeres doctor                       # the first thing to run after installing
      edgeres doctor --quick               # versions only, in a second
      edgeres doctor --require-tensorrt    # on a Jetson or GPU: the engines must build
      edgeres doctor --keep doctor-models --json doctor.json
    """
    from pathlib import Path

    from edgeres.atomic import check_writable, write_text_atomic
    from edgeres.doctor import DoctorSettings, format_table, run_doctor
    from edgeres.doctor.run import check_keep_folder
    from edgeres.errors import EdgeresError

    settings = DoctorSettings(
        quick=quick, require_tensorrt=require_tensorrt, keep=Path(keep) if keep else None
    )
    if settings.keep is not None:
        check_keep_folder(settings.keep)
    if json_out:
        check_writable(json_out)  # before the checks, not after them
    report = run_doctor(settings, progress=lambda line: click.echo(f"doctor: {line} ...", err=True))
    click.echo(format_table(report.checks))
    if report.kept:
        click.echo(f"kept the built models in {report.kept}")
    if json_out:
        write_text_atomic(json_out, json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    if not report.ok:
        raise EdgeresError(report.summary())
    click.echo(report.summary())
