"""Commands about models themselves: models, info, create, inspect."""

from __future__ import annotations

import json
from typing import Any

import click

from edgeres.commands.options import (
    class_names,
    classes_file,
    load_from_options,
    model_options,
    refuse_overwrite,
)


@click.command("models")
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


@click.command("info")
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


@click.command("create")
@click.argument("arch")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Checkpoint file to write [default: ARCH.pt]."
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
    output = output or f"{arch}.pt"
    refuse_overwrite([("-o", output)], [("--classes", classes_file(classes))])
    path = create_checkpoint(
        arch,
        output,
        num_classes=num_classes,
        class_names=class_names(classes) or (),
        seed=seed,
        arch_options=options,
    )
    click.echo(f"wrote {path}")


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def inspect_cmd(model: str, as_json: bool, **opts: Any) -> None:
    """Show what a model file holds: its format, architecture, classes and preprocessing.

    MODEL is an edgeres checkpoint, a state_dict (with --arch), TorchScript,
    a torch.export .pt2 program, or an ONNX file. For an ONNX file also its
    input and output names and shapes, opset, precision (fp32, fp16, int8 Q/DQ),
    the Q/DQ layout (tensorrt or cpu) and every stored metadata entry.

    \b
    Examples:
      edgeres inspect runs/resnet20/best.pt
      edgeres inspect resnet20.int8.tensorrt.onnx --json
      edgeres inspect resnet50_weights.pth --arch resnet50
      edgeres inspect scripted.pt --input-size 32 --classes cat,dog --num-classes 2
    """
    loaded = load_from_options(model, **opts)
    meta = loaded.meta
    params = None
    if loaded.module is not None:
        params = sum(p.numel() for p in loaded.module.parameters())
    graph = None
    if loaded.format == "onnx":
        from edgeres.export.onnx_summary import onnx_summary

        graph = onnx_summary(loaded.path)
    if as_json:
        data = {"format": loaded.format, "params": params, "meta": meta.to_dict()}
        if graph is not None:
            data["onnx"] = graph
        click.echo(json.dumps(data, indent=2))
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
    if graph is not None:
        from edgeres.export.onnx_summary import format_onnx_summary

        for line in format_onnx_summary(graph):
            click.echo(line)
