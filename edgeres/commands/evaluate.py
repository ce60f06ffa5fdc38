"""The eval command: top-1, top-5 and per-class accuracy of a model, and its agreement with a reference."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from edgeres.commands.options import (
    classes_file,
    ignore_unknown_option,
    load_from_options,
    model_options,
    refuse_overwrite,
)
from edgeres.errors import UsageError
from edgeres.runners.registry import AUTO, auto_help, backend_choices


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


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
