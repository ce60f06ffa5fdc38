"""The ``edgeres`` command: a thin click layer over the library API.

Options shared by several commands are defined once below. Every
:class:`EdgeresError` becomes one ``error: ...`` line and a non-zero exit
status; ``--debug`` (or EDGERES_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edgeres import __version__
from edgeres.errors import EdgeresError

F = TypeVar("F", bound=Callable[..., Any])

_DEBUG = {"on": os.environ.get("EDGERES_DEBUG", "") not in ("", "0")}


def _compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


#: How to read a model from outside edgeres; shared by every command that loads one.
model_options = _compose(
    click.option("--arch", help="Architecture of a bare state_dict (see `edgeres models`)."),
    click.option(
        "--num-classes", type=click.IntRange(min=1), help="Number of outputs, when the file lacks it."
    ),
    click.option(
        "--classes",
        help="Class names: a comma-separated list, or a text file with one name per line.",
    ),
    click.option(
        "--input-size",
        help="Input height and width, e.g. 224 or 32x32 [default: the architecture's, else 224].",
    ),
    click.option("--mean", help="Normalization mean per RGB channel [default: ImageNet 0.485,0.456,0.406]."),
    click.option("--std", help="Normalization std per RGB channel [default: ImageNet 0.229,0.224,0.225]."),
    click.option(
        "--unsafe-pickle",
        is_flag=True,
        help="Allow a file that holds a whole pickled nn.Module. Runs code from the file: trust it first.",
    ),
)


def _class_names(classes: str | None) -> tuple[str, ...] | None:
    """``--classes``: a comma-separated list, or a text file with one name per line."""
    if not classes:
        return None
    p = Path(classes)
    raw = p.read_text().splitlines() if p.is_file() else classes.split(",")
    return tuple(n.strip() for n in raw if n.strip())


def load_from_options(model: str, **opts: Any) -> Any:
    """Turn the shared model options into a :func:`edgeres.load_model` call."""
    from edgeres.loading import MetaOverrides, load_model
    from edgeres.metadata import parse_input_size, parse_triple

    overrides = MetaOverrides(
        num_classes=opts.get("num_classes"),
        class_names=_class_names(opts.get("classes")),
        input_size=parse_input_size(opts["input_size"]) if opts.get("input_size") else None,
        mean=parse_triple(opts["mean"], "--mean") if opts.get("mean") else None,
        std=parse_triple(opts["std"], "--std") if opts.get("std") else None,
    )
    return load_model(
        model, opts.get("arch"), overrides=overrides, unsafe_pickle=opts.get("unsafe_pickle", False)
    )


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Run `edgeres COMMAND --help` for a command's options and examples.",
)
@click.version_option(__version__, "--version", prog_name="edgeres")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also print informational log lines.")
def cli(debug: bool, verbose: bool) -> None:
    """Take a ResNet classifier from PyTorch to a fast INT8 engine, and measure what changed.

    \b
    Examples:
      edgeres models                      # the ResNets of He et al. 2015
      edgeres info                        # versions, CPU features, GPUs
      edgeres inspect model.pt            # what a model file holds
    """
    if debug:
        _DEBUG["on"] = True
    _setup_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(level: int) -> None:
    """Library log lines (skipped images, exporter fallbacks) go to stderr as 'warning: ...'."""
    logger = logging.getLogger("edgeres")
    for handler in list(logger.handlers):
        if getattr(handler, "_edgeres_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter())
    handler._edgeres_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@cli.command("models")
@click.option("--family", type=click.Choice(["imagenet", "cifar"]), help="Only this family.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models_cmd(family: str | None, as_json: bool) -> None:
    """List the architectures with their parameters and multiply-accumulates.

    The counts are computed from each model at its default input size (224x224
    for the ImageNet nets, 32x32 for the CIFAR nets), not typed in.

    \b
    Examples:
      edgeres models
      edgeres models --family cifar
      edgeres models --json > models.json
    """
    from dataclasses import asdict

    from edgeres.models import describe, list_models

    rows = [describe(name) for name in list_models(family)]
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    click.echo(f"{'name':<12}{'family':<10}{'depth':>6}  {'shortcuts':<10}{'params':>10}{'MACs':>11}  input")
    for r in rows:
        h, w = r.input_size
        click.echo(
            f"{r.name:<12}{r.family:<10}{r.depth:>6}  {'yes' if r.residual else 'no (plain)':<10}"
            f"{r.params / 1e6:>9.2f}M{r.macs / 1e9:>10.3f}G  {h}x{w}"
        )


@cli.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info_cmd(as_json: bool) -> None:
    """Show versions, CPU vector extensions, CUDA devices and ONNX Runtime providers.

    \b
    Examples:
      edgeres info
      edgeres info --json
    """
    from edgeres.sysinfo import collect, format_info

    info = collect()
    click.echo(json.dumps(info.to_dict(), indent=2) if as_json else format_info(info))


@cli.command("create")
@click.argument("arch")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Checkpoint to write [default: ARCH.pt]."
)
@click.option("--num-classes", type=click.IntRange(min=1), help="Number of outputs [default: the family's].")
@click.option("--classes", help="Class names: a comma-separated list, or a file with one name per line.")
@click.option("--shortcut", type=click.Choice(["A", "B"]), help="CIFAR nets: shortcut option [default: A].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation.")
def create_cmd(
    arch: str,
    output: str | None,
    num_classes: int | None,
    classes: str | None,
    shortcut: str | None,
    seed: int,
) -> None:
    """Write a checkpoint of ARCH with freshly initialised weights.

    The checkpoint carries the architecture's default input size and
    normalization, so every later stage reads it without flags. Fresh weights
    are enough to measure latency; train them for accuracy.

    \b
    Examples:
      edgeres create resnet20 -o resnet20.pt
      edgeres create resnet50 --num-classes 100
      edgeres create resnet56 --shortcut B --classes cat,dog,bird
    """
    from edgeres.checkpoint import create_checkpoint

    options = {"shortcut": shortcut} if shortcut else {}
    path = create_checkpoint(
        arch,
        output or f"{arch}.pt",
        num_classes=num_classes,
        class_names=_class_names(classes) or (),
        seed=seed,
        arch_options=options,
    )
    click.echo(f"wrote {path}")


@cli.command("export")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="ONNX file [default: MODEL with .onnx]."
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
    help="auto: torch.export (dynamo) first, the TorchScript exporter when it fails.",
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
    from edgeres.export import export_onnx

    loaded = load_from_options(model, **opts)
    module = loaded.require_module()
    real = None
    if verify_data:
        real = _sample_images(verify_data, loaded.meta, verify_size)
    result = export_onnx(
        module,
        loaded.meta,
        output or str(Path(model).with_suffix(".onnx")),
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


def _sample_images(spec: str, meta: Any, size: int) -> Any:
    """A class-stratified sample of ``size`` preprocessed images from any data source."""
    import numpy as np

    from edgeres.data import iter_batches, open_source, stratified_sample

    source = open_source(spec)
    indices = stratified_sample(source.labels, size, seed=0)
    return np.concatenate([x for x, _ in iter_batches(source, indices, meta.preprocessing)])


@cli.command("calib-set")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--size", type=click.IntRange(min=1), default=512, show_default=True, help="Images to pick.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Manifest to write.")
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

    result = make_calibration_set(data, size, output, seed=seed)
    counts = ", ".join(f"{k} {v}" for k, v in result.per_class.items())
    click.echo(f"wrote {result.path}: {result.num_images} images ({counts})")


@cli.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def inspect_cmd(model: str, as_json: bool, **opts: Any) -> None:
    """Show what a model file holds: its format, architecture, classes and preprocessing.

    MODEL is an edgeres checkpoint, a state_dict (with --arch), TorchScript,
    a torch.export .pt2 program, or an ONNX file.

    \b
    Examples:
      edgeres inspect runs/resnet20/best.pt
      edgeres inspect resnet50_weights.pth --arch resnet50
      edgeres inspect scripted.pt --input-size 32 --classes cat,dog --num-classes 2
    """
    loaded = load_from_options(model, **opts)
    meta = loaded.meta
    params = None
    if loaded.module is not None:
        params = sum(p.numel() for p in loaded.module.parameters())
    if as_json:
        click.echo(json.dumps({"format": loaded.format, "params": params, "meta": meta.to_dict()}, indent=2))
        return
    pre = meta.preprocessing
    click.echo(f"file         {loaded.path}")
    click.echo(f"format       {loaded.format}")
    click.echo(f"arch         {meta.arch or 'unknown'} {dict(meta.arch_options) or ''}".rstrip())
    if params is not None:
        click.echo(f"parameters   {params:,}")
    shown = ", ".join(meta.labels[:10]) + (", ..." if meta.num_classes > 10 else "")
    click.echo(f"classes      {meta.num_classes}: {shown}")
    click.echo(f"input        3x{pre.input_size[0]}x{pre.input_size[1]}")
    click.echo(f"mean / std   {list(pre.mean)} / {list(pre.std)}")
    prov = {k: v for k, v in meta.provenance.__dict__.items() if v is not None}
    if prov:
        click.echo(f"provenance   {prov}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn user errors into one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args[1:]:  # accepted anywhere on the line, not only before the command
        args = ["--debug", *(a for a in args if a != "--debug")]
    try:
        cli.main(args=args, prog_name="edgeres", standalone_mode=False)
    except EdgeresError as exc:
        if _DEBUG["on"]:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)
