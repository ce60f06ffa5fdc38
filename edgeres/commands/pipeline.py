"""Every stage in one resumable run: pipeline."""

from __future__ import annotations

import logging
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
from edgeres.pipeline.settings import DEFAULT_BENCH, SKIPPABLE_STAGES

_FLOORS = f"at least {DEFAULT_BENCH.iters} runs and {DEFAULT_BENCH.duration:g} s"


@click.command("pipeline")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--calib", help="Calibration images: folder, manifest, CIFAR batches, .npz or 'digits'.")
@click.option(
    "--eval",
    "eval_data",
    help="Evaluation images [default: the held-out split of the data a checkpoint was trained on].",
)
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="Settings file (edgeres.toml)."
)
@click.option(
    "-o",
    "--out",
    default="pipeline-out",
    show_default=True,
    type=click.Path(path_type=str),
    help="Folder for every artifact.",
)
@click.option("--force", is_flag=True, help="Rerun every stage, even those that are up to date.")
@click.option(
    "--skip", multiple=True, type=click.Choice(SKIPPABLE_STAGES), help="A stage not to run (repeatable)."
)
@method_option(help="Range calibration [default: percentile, or the config's].")
@target_option(
    help="INT8 Q/DQ layout(s); all: both [default: auto, tensorrt with TensorRT installed, else cpu]."
)
@click.option("--calib-size", type=int, help="Calibration images [default: 512].")
@click.option("--eval-size", type=int, help="Evaluate a class-stratified sample of this many [default: all].")
@click.option("--batch", help="Bench batch sizes, comma-separated: 1,8,32 [default: 1].")
@click.option(
    "--iters",
    type=int,
    help=f"Timed runs per batch size (with --duration: at least this many) [default: {_FLOORS}].",
)
@click.option(
    "--duration",
    type=float,
    help=f"Seconds of timing per batch size (with --iters: at least this long) [default: {_FLOORS}].",
)
@click.option("--threads", type=int, help="CPU inference threads [default: all cores].")
@click.option(
    "--openvino/--no-openvino",
    default=None,
    help="Also evaluate and time FP32 and the cpu-layout INT8 on OpenVINO, where it is installed "
    "[default: on, or the config's [openvino] enabled].",
)
@click.option("--no-progress", is_flag=True, help="No progress bars (the stage lines stay).")
@ignore_unknown_option
@model_options
def pipeline_cmd(
    model: str,
    calib: str | None,
    eval_data: str | None,
    config_file: str | None,
    out: str,
    force: bool,
    skip: tuple[str, ...],
    method: str | None,
    target: str | None,
    calib_size: int | None,
    eval_size: int | None,
    batch: str | None,
    iters: int | None,
    duration: float | None,
    threads: int | None,
    openvino: bool | None,
    no_progress: bool,
    ignore_unknown_classes: bool,
    **opts: Any,
) -> None:
    """Export, convert, quantize, build engines, evaluate, benchmark and report MODEL.

    Every artifact goes to one folder (-o). A stage is skipped when its outputs
    are newer than its inputs and its settings are unchanged, so a stopped run
    resumes where it stopped and a second run is quick; a changed setting or
    input reruns that stage and the ones after it. Stages that cannot run here
    (no TensorRT, no CUDA GPU, no --calib) are skipped with the reason. Settings
    come from --config (one table per stage, see docs/commands/pipeline.md);
    flags override the file. Each model is timed like `edgeres bench` times it:
    after 200 ms of warm-up, for at least 100 runs and 3 s; --iters or --duration
    alone times only a run count or only a time, and given together both are
    minimums (the same goes for iters and duration in the file). A table of the
    stages ends the run.

    \b
    Examples:
      edgeres pipeline runs/digits/best.pt --calib digits
      edgeres pipeline r20.pt --calib ./cifar10/train --eval ./cifar10/val -o out/r20
      edgeres pipeline resnet50.onnx --calib calib/in-512.txt --eval ./imagenet/val --config edgeres.toml
      edgeres pipeline r20.pt --calib ./c10/train --method entropy --batch 1,16 --duration 10 --force
      edgeres pipeline r20.pt --calib digits --iters 20   # a quick look: 20 timed runs
      edgeres pipeline r20.pt --calib ./c10/train --no-openvino   # ONNX Runtime only
    """
    from edgeres.commands.options import parse_batch_sizes
    from edgeres.errors import EdgeresError
    from edgeres.pipeline import format_summary, load_config, run_pipeline

    refuse_overwrite(
        [("-o", out)],
        [
            ("MODEL", model),
            ("--config", config_file),
            ("--calib", calib),
            ("--eval", eval_data),
            ("--classes", classes_file(opts.get("classes"))),
        ],
    )
    logging.getLogger("edgeres.pipeline").setLevel(logging.INFO)  # one line per stage
    config = load_config(config_file)
    config = config.override("quantize", method=method, target=target, calib_size=calib_size)
    config = config.override("eval", size=eval_size, ignore_unknown_classes=ignore_unknown_classes or None)
    config = config.override("openvino", enabled=openvino)
    config = config.override(
        "bench",
        batches=parse_batch_sizes(batch) if batch else None,
        iters=iters,
        duration=duration,
        threads=threads,
    )
    given = overrides_from_options(**opts)
    config = config.override(
        "model",
        arch=opts.get("arch"),
        num_classes=given.num_classes,
        classes=given.class_names,
        input_size=given.input_size,
        mean=given.mean,
        std=given.std,
        unsafe_pickle=True if opts.get("unsafe_pickle") else None,
    )
    if skip:
        from dataclasses import replace

        config = replace(config, skip=tuple(dict.fromkeys((*config.skip, *skip))))
    result = run_pipeline(
        model, out, config, calib=calib, eval_data=eval_data, force=force, progress=not no_progress
    )
    if result.report is not None:
        from edgeres.report import summary_table

        click.echo(summary_table(result.report.data))
        click.echo(f"report: {result.report.markdown}, {result.report.html}\n")
    click.echo(format_summary(result))
    failed = result.failed
    if failed is not None:
        error = failed.error
        debug = logging.getLogger("edgeres").isEnabledFor(logging.DEBUG)
        if error is not None and (debug or not isinstance(error, EdgeresError)):
            raise error  # a bug, or --debug: the traceback
        code = error.exit_code if isinstance(error, EdgeresError) else 1
        raise EdgeresError(f"stage {failed.name} failed: {failed.reason}", exit_code=code)
