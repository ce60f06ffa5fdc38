"""The quantize command: INT8 post-training quantization of an FP32 model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgeres.commands.options import (
    classes_file,
    ignore_unknown_option,
    method_option,
    model_options,
    overrides_from_options,
    refuse_overwrite,
    target_option,
)
from edgeres.quantize.adaround import ROUNDINGS, RoundingSettings
from edgeres.quantize.targets import DEFAULT_WEIGHT_BITS, TARGET_SPECS, WEIGHT_BITS_CHOICES


def rounding_summary(r: dict[str, Any]) -> str:
    """One line of what learned rounding did (a :meth:`LearnedRounding.to_dict`)."""
    gain = r.get("error_reduction")
    reused = f", {r['reused_layers']} from the cache" if r.get("reused_layers") else ""
    return (
        f"{r['layers']} layers on {r['images']} images{reused}, {100 * r['flipped']:.1f}% of weights rounded "
        "the other way than nearest"
        + (f", layer output error {100 * gain:.0f}% lower" if gain is not None else "")
        + f" ({r['seconds']:.0f} s"
        + (f", {r['temp_mb']:.0f} MB of temporary files" if r.get("temp_mb") else "")
        + ")"
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


@click.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--calib", help="Calibration images: folder, manifest, CIFAR batches, .npz or 'digits'.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="INT8 ONNX file to write; with several targets the stem of their names (OUTPUT.cpu.onnx, ...) "
    "[default: MODEL.int8.TARGET.onnx].",
)
@target_option(
    default="auto",
    show_default=True,
    help="Q/DQ layout: tensorrt (engines), cpu (ONNX Runtime int8 kernels), openvino (OpenVINO's "
    "CPU plugin: each residual sum rounded once, as OpenVINO computes it), all (every one). "
    "auto: tensorrt where TensorRT is installed, else cpu.",
)
@method_option(
    default="percentile",
    show_default=True,
    help="Range calibration; auto tries all on held-out images and keeps the best.",
)
@click.option("--percentile", type=float, default=99.999, show_default=True, help="For --method percentile.")
@click.option("--calib-size", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--calib-batch", type=click.IntRange(min=1), help="Images per calibration run [default: auto].")
@click.option(
    "--calib-cache",
    type=click.Path(dir_okay=False),
    help="Reuse these ranges when the file exists (no calibration); else where to write them "
    "[default: OUTPUT.calib.json].",
)
@click.option(
    "--eval", "eval_data", help="Evaluate FP32 and INT8 on these images (held out from calibration)."
)
@click.option("--eval-size", type=click.IntRange(min=1), help="Evaluate on a stratified sample of this many.")
@click.option(
    "--max-drop", type=float, help="Keep the most sensitive layers in float until top-1 drops at most this."
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="NODE",
    help="Keep this node in float (a name or a glob such as '/layer1.*'); repeatable.",
)
@click.option(
    "--bias-correction/--no-bias-correction",
    default=None,
    help="Remove the mean output shift of each layer's int8 weights from its bias (one more pass) "
    "[default: on].",
)
@click.option(
    "--rounding",
    type=click.Choice(ROUNDINGS),
    default="nearest",
    show_default=True,
    help="How weights round to int8: nearest, or adaround, learned layer by layer on the calibration "
    "images to reproduce each layer's FP32 output (minutes; needs 64 or more images).",
)
@click.option(
    "--rounding-iterations",
    type=click.IntRange(min=1),
    default=RoundingSettings().iterations,
    show_default=True,
    help="Optimizer steps per layer for --rounding adaround.",
)
@click.option(
    "--weight-bits",
    type=click.Choice([str(b) for b in WEIGHT_BITS_CHOICES]),
    default=str(DEFAULT_WEIGHT_BITS),
    show_default=True,
    help="The cpu and openvino layouts' weights: 7 bits cannot overflow the int8 kernels of x86 CPUs without "
    "VNNI (AVX2); 8 is exact on CPUs with VNNI or AMX and on Arm. auto: 7 on a CPU like this one "
    "without VNNI, else 8.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the image samples.")
@click.option("--threads", type=click.IntRange(min=1), help="ONNX Runtime threads [default: all cores].")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@ignore_unknown_option
@model_options
def quantize_cmd(
    model: str,
    calib: str | None,
    output: str | None,
    target: str,
    method: str,
    percentile: float,
    calib_size: int,
    calib_batch: int | None,
    calib_cache: str | None,
    eval_data: str | None,
    eval_size: int | None,
    max_drop: float | None,
    exclude: tuple[str, ...],
    bias_correction: bool | None,
    rounding: str,
    rounding_iterations: int,
    weight_bits: str,
    seed: int,
    threads: int | None,
    json_out: str | None,
    no_progress: bool,
    ignore_unknown_classes: bool,
    **opts: Any,
) -> None:
    """Quantize MODEL to INT8 with post-training calibration (explicit Q/DQ ONNX).

    MODEL is a checkpoint (exported to ONNX first, kept as MODEL.fp32.onnx) or
    an FP32 ONNX. Calibration streams --calib-size class-stratified images
    through the model once, batch by batch, so memory does not grow with the
    number of images; the ranges go to a calibration cache (JSON) that
    --calib-cache reuses. With --eval, FP32 and INT8 top-1/top-5 and their
    agreement are printed; images used for the reported accuracy are never used
    for calibration or tuning.

    \b
    Examples:
      edgeres quantize resnet20.pt --calib ./cifar10/train --eval ./cifar10/train
      edgeres quantize resnet50.pt --calib calibration/imagenet-512.txt --target tensorrt
      edgeres quantize resnet56.onnx --calib-cache resnet56.int8.calib.json --target all
      edgeres quantize r20.pt --calib data/ --eval data/ --method auto --max-drop 0.5
      edgeres quantize r20.onnx --calib data/ --eval data/ --bias-correction
      edgeres quantize r20.onnx --calib data/ --exclude /conv1/Conv --exclude '/fc/*'
      edgeres quantize r20.pt --calib data/ --target cpu --weight-bits 8
      edgeres quantize r20.onnx --calib data/ --eval data/ --rounding adaround
      edgeres quantize r20.pt --calib data/ --target openvino -o r20.int8.openvino.onnx
    """
    from edgeres.quantize.settings import CalibrationSettings
    from edgeres.quantize.targets import target_choice
    from edgeres.quantize.targets import weight_bits as as_weight_bits
    from edgeres.quantize.workflow import QuantizeOptions, quantize

    cache_exists = bool(calib_cache) and Path(str(calib_cache)).exists()
    refuse_overwrite(
        [("-o", output), ("--json", json_out), ("--calib-cache", None if cache_exists else calib_cache)],
        [
            ("MODEL", model),
            ("--calib", calib),
            ("--eval", eval_data),
            ("--classes", classes_file(opts.get("classes"))),
            ("--calib-cache", calib_cache if cache_exists else None),
        ],
    )
    if json_out:
        from edgeres.atomic import check_writable

        check_writable(json_out)  # before calibration, not after it
    settings = CalibrationSettings(
        method="percentile" if method == "auto" else method,
        percentile=percentile,
        batch_size=calib_batch,
    )
    options = QuantizeOptions(
        calib=calib,
        target=target_choice(target),
        settings=settings,
        auto_method=method == "auto",
        calib_size=calib_size,
        calib_cache=Path(calib_cache) if calib_cache else None,
        eval_data=eval_data,
        eval_size=eval_size,
        max_drop=max_drop,
        seed=seed,
        threads=threads,
        progress=not no_progress,
        ignore_unknown_classes=ignore_unknown_classes,
        bias_correction=bias_correction,
        exclude=tuple(exclude),
        weight_bits=as_weight_bits(weight_bits),
        rounding=rounding,  # type: ignore[arg-type]  # click.Choice(ROUNDINGS)
        rounding_settings=RoundingSettings(iterations=rounding_iterations),
    )
    report = quantize(model, output, options, arch=opts.get("arch"), overrides=overrides_from_options(**opts))
    if weight_bits != "auto" and not any(_chooses_bits(t.target) for t in report.targets):
        click.echo(
            f"note: --weight-bits {weight_bits} is for the cpu and openvino layouts; the tensorrt layout "
            "keeps 8-bit weights (TensorRT accumulates in 32 bits)",
            err=True,
        )
    from edgeres.report.tables import signed

    source = "reused" if report.reused_cache else "wrote"
    click.echo(f"calibration: {report.method} on {report.calib_images} images ({source} {report.cache})")
    for name, score in report.method_scores.items():
        click.echo(f"  method {name:<10} agreement with FP32 on tuning images {_pct(score)}")
    if report.eval_images:
        click.echo(f"evaluation: {report.eval_images} images; {report.selection_note}")
        click.echo(f"  {'model':<34}{'top-1':>9}{'top-5':>9}{'Δ top-1':>9}{'agree':>9}")
        click.echo(
            f"  {'FP32 ' + report.fp32_onnx.name:<34}{_pct(report.fp32_top1):>9}{_pct(report.fp32_top5):>9}"
        )
        for t in report.targets:
            change = "-" if t.drop is None else signed(-t.drop)  # negative: a loss
            cells = f"{_pct(t.top1):>9}{_pct(t.top5):>9}{change:>9}{_pct(t.agreement):>9}"
            click.echo(f"  {'INT8 ' + t.target:<34}{cells}")
        for t in report.targets:
            if t.caveat:
                click.echo(f"caveat ({t.target}): {t.caveat}")
    for t in report.targets:
        if t.bias_correction:
            bc = t.bias_correction
            click.echo(
                f"bias correction ({t.target}): {bc['layers']} layers on {bc['images']} images, "
                f"mean |shift| {bc['mean_abs_shift']:.3g}"
            )
    for t in report.targets:
        if t.rounding:
            click.echo(f"learned rounding ({t.target}): {rounding_summary(t.rounding)}")
    for t in report.targets:
        kept = f"; kept in float: {', '.join(t.excluded_nodes)}" if t.excluded_nodes else ""
        chooses = _chooses_bits(t.target)
        bits = f", {t.weight_bits}-bit weights" if chooses else ""
        if chooses and weight_bits == "auto" and t.weight_bits == 7:
            bits += " (auto: this CPU has no VNNI; --weight-bits 8 for CPUs with VNNI or AMX)"
        click.echo(
            f"wrote {t.path} ({t.target} layout{bits}, {t.num_quantized_nodes} weighted ops in int8{kept})"
        )
    if json_out:
        from edgeres.records import QuantizeRecord, write_quantize

        write_quantize(json_out, QuantizeRecord.of(report))


def _chooses_bits(target: str) -> bool:
    """Whether ``--weight-bits`` applies to ``target``'s layout."""
    spec = TARGET_SPECS.get(target)
    return spec is not None and spec.chooses_weight_bits
