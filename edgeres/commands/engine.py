"""TensorRT engines and the FP16 ONNX they build from: build-engine, convert-fp16."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("build-engine")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Engine file to write [default: MODEL.engine; with --fp16 MODEL.fp16.engine, a .fp32 tag replaced].",
)
@click.option("--fp16", is_flag=True, help="Convert to an FP16 ONNX first (with a Q/DQ model: INT8 + FP16).")
@click.option(
    "--batch",
    default="1:1:1",
    show_default=True,
    help="Optimization profile MIN:OPT:MAX, or N, or the sizes to run as in bench (1,8,32: "
    "MIN and MAX the smallest and largest, OPT the first listed). TensorRT tunes its kernels for OPT.",
)
@click.option(
    "--int8",
    is_flag=True,
    help="Accepted for trtexec users: INT8 comes from a Q/DQ model (edgeres quantize --target tensorrt); "
    "given one, nothing to add; given an FP32 ONNX, an error saying how to make one.",
)
@click.option("--workspace", help="Builder memory limit, e.g. 2G or 512M [default: TensorRT's].")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="Read and update this timing cache.")
@click.option(
    "--dla-core", type=click.IntRange(min=0), help="Build for this DLA core (Jetson), GPU fallback."
)
@click.option(
    "--opt-level", type=click.IntRange(0, 5), help="Builder optimization level [default: TensorRT's, 3]."
)
@click.option("--input-size", help="HxW for an ONNX from outside with dynamic height and width.")
@click.option("--no-progress", is_flag=True, help="No progress display.")
def build_engine_cmd(
    model: str,
    output: str | None,
    fp16: bool,
    batch: str,
    workspace: str | None,
    timing_cache: str | None,
    dla_core: int | None,
    opt_level: int | None,
    input_size: str | None,
    no_progress: bool,
    int8: bool,
) -> None:
    """Build a TensorRT engine from an ONNX model, for the GPU or Jetson it runs on.

    Precision lives in the ONNX (the TensorRT 10 and 11 way, strongly typed):
    an FP32 ONNX gives an FP32 engine, --fp16 an FP16 one, a Q/DQ model from
    `edgeres quantize --target tensorrt` an INT8 one (with --fp16: INT8 plus
    FP16 for the layers left unquantized, usually the fastest). A JSON sidecar
    next to the engine records the TensorRT version and GPU it was built for;
    an engine is refused on another before TensorRT tries to load it.

    \b
    Examples:
      edgeres build-engine resnet50.onnx --fp16
      edgeres build-engine resnet50.int8.onnx --fp16 --batch 1:8:32 --timing-cache trt.cache
      edgeres build-engine resnet20.int8.onnx --dla-core 0 -o r20.dla.engine
      edgeres build-engine resnet50.int8.onnx --fp16 --batch 1,8,32   # profile 1:1:32
    """
    from edgeres.commands.options import refuse_overwrite
    from edgeres.engine.build import build_engine
    from edgeres.engine.options import EngineOptions
    from edgeres.engine.sidecar import sidecar_path

    options = EngineOptions.from_strings(
        fp16=fp16,
        batch=batch,
        workspace=workspace,
        timing_cache=timing_cache,
        dla_core=dla_core,
        builder_optimization_level=opt_level,
        output=output,
        input_size=input_size,
    )
    if int8:
        _check_int8(model)
    engine = options.engine_path(model)
    refuse_overwrite(
        [("-o", engine), ("the engine's sidecar", sidecar_path(engine)), ("--timing-cache", timing_cache)],
        [("MODEL", model)],
    )
    result = build_engine(model, options, progress=not no_progress)
    click.echo(result.summary())


def _check_int8(model: str) -> None:
    """``--int8``: a no-op on a Q/DQ model (said so on stderr); on any other a usage error naming the fix."""
    from edgeres.errors import UsageError
    from edgeres.export.onnx_meta import load_onnx
    from edgeres.precision import onnx_precision

    if onnx_precision(load_onnx(model)).startswith("int8"):
        click.echo(f"--int8: nothing to add, the INT8 comes from the Q/DQ nodes of {model}", err=True)
        return
    raise UsageError(
        f"--int8: an engine's INT8 comes from a Q/DQ model and {model} has none; make one with "
        f"`edgeres quantize {model} --calib DATA --target tensorrt` and build from it"
    )


@click.command("convert-fp16")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="ONNX file to write [default: MODEL.fp16.onnx, a .fp32 tag replaced].",
)
@click.option("--keep-fp32", help="Comma-separated op types to keep in float32 besides the defaults.")
def convert_fp16_cmd(model: str, output: str | None, keep_fp32: str | None) -> None:
    """Write an FP16 copy of an ONNX model: what `build-engine --fp16` builds from.

    Inputs and outputs stay float32; numerically sensitive ops (Softmax,
    reductions, Resize, ...) stay float32. On a Q/DQ model the result is INT8
    with FP16 between the quantized layers. Runs anywhere: check its accuracy
    with `edgeres eval` on ONNX Runtime before building an engine.

    \b
    Examples:
      edgeres convert-fp16 resnet50.onnx
      edgeres convert-fp16 resnet50.int8.onnx -o resnet50.int8fp16.onnx
    """
    from edgeres.commands.options import refuse_overwrite
    from edgeres.engine.fp16 import DEFAULT_FP32_OPS, convert_fp16
    from edgeres.naming import derived_path

    blocked = list(DEFAULT_FP32_OPS) + [op.strip() for op in (keep_fp32 or "").split(",") if op.strip()]
    path = Path(model)
    target = Path(output) if output else derived_path(path, "fp16", ".onnx")
    refuse_overwrite([("-o", target)], [("MODEL", path)])
    out = convert_fp16(path, target, op_block_list=blocked)
    click.echo(f"wrote {out}")
