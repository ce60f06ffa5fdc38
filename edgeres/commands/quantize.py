"""INT8 post-training quantization and evaluation: quantize, eval."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from edgeres.commands.options import (
    classes_file,
    ignore_unknown_option,
    load_from_options,
    method_option,
    model_options,
    overrides_from_options,
    refuse_overwrite,
    target_option,
)
from edgeres.errors import UsageError
from edgeres.quantize.adaround import ROUNDINGS, RoundingSettings
from edgeres.quantize.targets import DEFAULT_WEIGHT_BITS, TARGET_SPECS, WEIGHT_BITS_CHOICES
from edgeres.runners.registry import AUTO, auto_help, backend_choices


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


@click.command("eval")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--data", required=True, help="Labelled images: folder, manifest, CIFAR batches, .npz or 'digits'."
)
@click.option("--size", type=click.IntRange(min=1), help="Evaluate a class-stratified sample of this many.")
@click.option(
    "--backend",
    type=click.Choice(backend_choices()),
    default=AUTO,
    show_default=True,
    help="What runs MODEL; " + auto_help(),
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu or cuda (cuda:N); engines run on cuda; with --backend openvino, OpenVINO's (GPU, NPU, AUTO).",
)
@click.option(
    "--compare", type=click.Path(dir_okay=False), help="A reference model (e.g. the FP32 one): agreement."
)
@click.option(
    "--compare-backend",
    type=click.Choice(backend_choices()),
    help="What runs the --compare model [default: auto, whatever --backend is].",
)
@click.option("--compare-device", help="Where the --compare model runs [default: cpu, whatever --device is].")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads [default: all cores].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the full result as JSON.")
@click.option("--no-progress", is_flag=True)
@ignore_unknown_option
@model_options
def eval_cmd(
    model: str,
    data: str,
    size: int | None,
    backend: str,
    device: str,
    compare: str | None,
    compare_backend: str | None,
    compare_device: str | None,
    batch_size: int,
    threads: int | None,
    seed: int,
    json_out: str | None,
    no_progress: bool,
    ignore_unknown_classes: bool,
    **opts: Any,
) -> None:
    """Top-1, top-5 and per-class accuracy of a torch, ONNX FP32 or ONNX INT8 model.

    The images are prepared exactly as calibration prepares them, from the
    model's metadata. --backend and --device pick the runtime that runs MODEL,
    so accuracy is measured where the model will serve (OpenVINO, say). With
    --compare, both models run on the same images and their top-1 agreement is
    printed: the sharper measure of what INT8 changed. The reference is the
    FP32 truth: it runs on --compare-backend and --compare-device (auto, cpu),
    never on --backend/--device, so changing the runtime under test does not
    change what it is measured against.

    \b
    Examples:
      edgeres eval resnet20.int8.onnx --data ./cifar10/val --compare resnet20.fp32.onnx
      edgeres eval resnet20.int8.onnx --data ./cifar10/val --backend openvino --compare resnet20.fp32.onnx
      edgeres eval runs/r20/best.pt --data ./cifar10/val --json eval.json
      edgeres eval resnet50.onnx --data ./imagenet/val --size 5000
    """
    from edgeres.atomic import check_writable
    from edgeres.data import align_labels, open_source, stratified_sample
    from edgeres.evaluate import agreement, evaluate
    from edgeres.progress import announce
    from edgeres.records import EvalRecord, Reference, write_eval

    if compare is None and (compare_backend is not None or compare_device is not None):
        given = "--compare-backend" if compare_backend is not None else "--compare-device"
        raise UsageError(f"{given} is for the --compare model; give --compare REFERENCE too")
    refuse_overwrite(
        [("--json", json_out)],
        [
            ("MODEL", model),
            ("--data", data),
            ("--compare", compare),
            ("--classes", classes_file(opts.get("classes"))),
        ],
    )
    if json_out:
        check_writable(json_out)
    loaded = load_from_options(model, **opts)
    runner = _eval_runner(loaded, model, backend, device, threads, "--backend")
    ref_loaded = ref_runner = None
    if compare:
        ref_loaded = load_from_options(compare, **opts)
        ref_runner = _eval_runner(
            ref_loaded,
            compare,
            compare_backend or AUTO,
            compare_device or "cpu",
            threads,
            "--compare-backend",
        )
    # Started now: a device or a file its backend cannot use fails here, before any image is read.
    with contextlib.ExitStack() as started:
        for r in (runner, ref_runner):
            if r is not None:
                started.enter_context(r)
        source = open_source(data)
        meta = loaded.meta
        classes = align_labels(
            source, meta.class_names, meta.num_classes, ignore_unknown=ignore_unknown_classes
        )
        indices = stratified_sample(source.labels, size, seed=seed) if size else None
        pre = meta.preprocessing
        count = len(source) if indices is None else len(indices)
        announce(f"evaluating {model} on {count} images of {data} ({runner.name} on {runner.device})")
        result = evaluate(
            runner, source, indices, pre, batch_size=batch_size, progress=not no_progress, classes=classes
        )
        click.echo(result.summary())
        from edgeres.quantize.saturation import saturation_caveat

        caveat = saturation_caveat(model, runner.name, runner.device)
        if caveat:
            click.echo(f"caveat: {caveat}")
        from edgeres.bench.compare import onnx_target
        from edgeres.quantize.targets import layout_note

        note = layout_note(onnx_target(model), runner.name)
        if note:
            click.echo(f"note: {note}", err=True)
        reference = None
        if compare and ref_loaded is not None and ref_runner is not None:
            ref_meta = ref_loaded.meta
            ref_classes = align_labels(
                source, ref_meta.class_names, ref_meta.num_classes, ignore_unknown=ignore_unknown_classes
            )
            announce(
                f"evaluating the reference {compare} on the same {result.num_images} images "
                f"({ref_runner.name} on {ref_runner.device})"
            )
            ref = evaluate(
                ref_runner,
                source,
                result.indices,
                pre,
                batch_size=batch_size,
                progress=not no_progress,
                classes=ref_classes,
            )
            reference = Reference.measured(compare, ref_runner, ref, agreement=agreement(result, ref))
            click.echo(f"reference {Path(compare).name}: {ref.summary()}")
            click.echo(f"top-1 agreement with the reference: {_pct(agreement(result, ref))}")
        worst = sorted(result.per_class.items(), key=lambda kv: kv[1][0] / max(kv[1][1], 1))[:3]
        if worst:
            click.echo("weakest classes: " + ", ".join(f"{n} {c}/{t}" for n, (c, t) in worst))
        if json_out:
            record = EvalRecord.measured(model, runner, result, reference=reference, caveat=caveat)
            write_eval(json_out, record)


def _eval_runner(loaded: Any, path: str, backend: str, device: str, threads: int | None, flag: str) -> Any:
    """The runner of one model eval scores: its loaded module (a PyTorch file) or its file, on ``backend``.

    A PyTorch file asked to run on a backend that runs files only (openvino, onnxruntime,
    tensorrt) is a one-line :class:`UsageError` naming the file, before any image is read.
    """
    from edgeres.runners import make_runner
    from edgeres.runners.registry import get_backend

    if loaded.module is not None and backend != AUTO and not get_backend(backend).runs_modules:
        raise UsageError(
            f"{flag} {backend} cannot run '{Path(path).name}', a PyTorch model; "
            f"give its ONNX export (edgeres export) or use {flag} {AUTO}"
        )
    return make_runner(
        loaded.module if loaded.module is not None else path, backend, device=device, threads=threads
    )


def _chooses_bits(target: str) -> bool:
    """Whether ``--weight-bits`` applies to ``target``'s layout."""
    spec = TARGET_SPECS.get(target)
    return spec is not None and spec.chooses_weight_bits
