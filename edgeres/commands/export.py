"""From PyTorch to ONNX, and the calibration set for INT8: export, calib-set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgeres.commands.options import (
    classes_file,
    load_from_options,
    model_options,
    refuse_overwrite,
    sample_images,
)
from edgeres.errors import EdgeresError


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="ONNX file to write [default: MODEL with .onnx]."
)
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17 or newer).")
@click.option("--static-batch", is_flag=True, help="Fix the batch size to 1 instead of a dynamic batch axis.")
@click.option(
    "--no-fold-bn", is_flag=True, help="Keep BatchNorm nodes instead of folding them into the convs."
)
@click.option(
    "--exporter",
    type=click.Choice(["auto", "dynamo", "torchscript"]),
    default="auto",
    show_default=True,
    help="auto: the one known to work for the opset first (TorchScript below 18, dynamo from 18), "
    "the other when it fails.",
)
@click.option("--verify-data", help="Images to verify on besides random inputs (any data source).")
@click.option("--verify-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--atol", type=float, default=1e-3, show_default=True, help="Largest logit difference allowed.")
@model_options
def export_cmd(
    model: str,
    output: str | None,
    opset: int,
    static_batch: bool,
    no_fold_bn: bool,
    exporter: str,
    verify_data: str | None,
    verify_size: int,
    atol: float,
    **opts: Any,
) -> None:
    """Export MODEL to ONNX: BatchNorm folded, checked, and verified against PyTorch.

    The model's metadata (classes, input size, mean/std, architecture) travels
    in the ONNX file, so later stages need no flags. The export is compared with
    PyTorch on random inputs (and on real images with --verify-data): the
    largest logit difference and the top-1 agreement are printed, and the
    command fails, writing nothing, beyond --atol.

    \b
    Examples:
      edgeres export resnet20.pt -o resnet20.onnx
      edgeres export runs/r56/best.pt --verify-data ./cifar10/val
      edgeres export weights.pth --arch resnet50 --num-classes 1000 -o resnet50.onnx
    """
    from edgeres.atomic import check_writable
    from edgeres.export import export_onnx
    from edgeres.progress import announce

    output = output or str(Path(model).with_suffix(".onnx"))
    refuse_overwrite(
        [("-o", output)],
        [("MODEL", model), ("--classes", classes_file(opts.get("classes"))), ("--verify-data", verify_data)],
    )
    if not Path(output).is_dir():  # a folder is export_onnx's usage error; the rest fails before any work
        check_writable(output)
    loaded = load_from_options(model, **opts)
    module = loaded.require_module()
    real = None
    if verify_data:
        real = sample_images(verify_data, loaded.meta, verify_size)
    announce(f"exporting {loaded.meta.arch or Path(model).name} to ONNX (opset {opset}), then verifying it")
    result = export_onnx(
        module,
        loaded.meta,
        output,
        opset=opset,
        dynamic_batch=not static_batch,
        fold_bn=not no_fold_bn,
        exporter=exporter,
        real_inputs=real,
        atol=atol,
    )
    if result.verification is not None:
        for check in result.verification.checks:
            click.echo(f"verified {check.summary()}")
    click.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, opset {result.opset})")


@click.command("calib-set")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--size", type=click.IntRange(min=1), default=512, show_default=True, help="Images to pick.")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Manifest file to write."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the class-stratified sample.")
def calib_set_cmd(data: str, size: int, output: str, seed: int) -> None:
    """Pick a calibration set from an image folder and write it as a manifest.

    The sample is class-stratified with a fixed seed; the manifest lists each
    image's path relative to DATA with its SHA-256, so the set can be committed,
    reviewed and reproduced, and a changed image is caught before it changes the
    INT8 ranges. Pass the manifest wherever a calibration folder is accepted.

    \b
    Examples:
      edgeres calib-set ./cifar10/train --size 512 -o calibration/cifar10-512.txt
      edgeres calib-set ./imagenet/train --size 1024 --seed 1 -o calibration/imagenet-1024.txt
    """
    from edgeres.data.calibset import make_calibration_set

    refuse_overwrite([("-o", output)], [], [("DATA", data)])
    try:
        result = make_calibration_set(data, size, output, seed=seed)
    except OSError as exc:  # the manifest's write: name the file (the error itself may not)
        if exc.filename is not None:
            raise
        raise EdgeresError(f"cannot write '{output}': {exc.strerror or exc}") from exc
    counts = ", ".join(f"{k} {v}" for k, v in result.per_class.items())
    click.echo(f"wrote {result.path}: {result.num_images} images ({counts})")
