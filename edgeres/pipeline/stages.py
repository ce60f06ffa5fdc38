"""The stages that make model files: export, fp16, quantize, engines.

Each stage has three functions: ``plan`` says what it would read and write (or, as a
string, why it cannot run here), ``run`` does the work through the library functions of
the single commands, ``register`` adds the model variants it made to the run's context
(after a run, or when it was up to date). Every file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeres.atomic import atomic_path, write_text_atomic
from edgeres.errors import UsageError
from edgeres.pipeline.context import (
    FP16_ONNX,
    TRAIN_SPLIT,
    Context,
    Variant,
    has_module,
    same_data,
    tensorrt_unavailable,
    train_split_record,
)
from edgeres.pipeline.settings import fingerprint
from edgeres.pipeline.state import StagePlan

__all__ = ["Outcome", "StageDef", "engines_stage", "export_stage", "fp16_stage", "quantize_stage"]

CALIB_CACHE = "model.int8.calib.json"
QUANTIZE_JSON = "quantize.json"


@dataclass(frozen=True)
class Outcome:
    """What a stage's run wrote, a note for the summary, and data kept in the state file."""

    outputs: tuple[Path, ...]
    note: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageDef:
    name: str
    plan: Callable[[Context], StagePlan | str]
    run: Callable[[Context, StagePlan], Outcome]
    #: Adds the stage's variants to the context; gets the outputs and the recorded info.
    register: Callable[[Context, StagePlan, tuple[Path, ...], Mapping[str, Any]], None]


# -- export ------------------------------------------------------------------------------------


def _plan_export(ctx: Context) -> StagePlan:
    cfg = ctx.config
    return StagePlan(fingerprint(cfg.model, cfg.export), files=(ctx.model,), outputs=(ctx.fp32,))


def _run_export(ctx: Context, plan: StagePlan) -> Outcome:
    from edgeres.loading import load_model

    m = ctx.config.model
    loaded = load_model(ctx.model, m.arch, overrides=m.overrides(), unsafe_pickle=m.unsafe_pickle)
    if loaded.is_onnx:
        _copy_onnx(ctx.model, loaded.meta, ctx.fp32)
        note = "copied the ONNX model with its metadata"
    else:
        from edgeres.export import export_onnx

        e = ctx.config.export
        result = export_onnx(
            loaded.require_module(),
            loaded.meta,
            ctx.fp32,
            opset=e.opset,
            dynamic_batch=e.dynamic_batch,
            fold_bn=e.fold_bn,
            exporter=e.exporter,
        )
        note = f"opset {result.opset}, {result.exporter} exporter"
    outputs = [ctx.fp32]
    split_path = ctx.out / TRAIN_SPLIT
    split = train_split_record(loaded.extra)
    if split is not None:
        write_text_atomic(split_path, json.dumps(split) + "\n")
        outputs.append(split_path)
    else:
        split_path.unlink(missing_ok=True)
    return Outcome(tuple(outputs), note)


def _copy_onnx(source: Path, meta: Any, target: Path) -> None:
    """Copy an ONNX classifier, with the metadata the model options gave it written in."""
    from edgeres.export.onnx_meta import check_classifier, load_onnx, write_meta_props

    proto = load_onnx(source, load_weights=True)
    check_classifier(proto, source.name)
    write_meta_props(proto, meta)
    with atomic_path(target, suffix=".onnx.tmp") as tmp:
        import onnx

        onnx.save_model(proto, str(tmp))


def _register_export(
    ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]
) -> None:
    ctx.variants["fp32"] = Variant("fp32", ctx.fp32, "fp32")


export_stage = StageDef("export", _plan_export, _run_export, _register_export)


# -- fp16 --------------------------------------------------------------------------------------


def _plan_fp16(ctx: Context) -> StagePlan | str:
    if not has_module("onnxconverter_common"):
        return "onnxconverter-common not installed (pip install onnxconverter-common)"
    return StagePlan(fingerprint(ctx.config.fp16), files=(ctx.fp32,), outputs=(ctx.out / FP16_ONNX,))


def _run_fp16(ctx: Context, plan: StagePlan) -> Outcome:
    from edgeres.engine.fp16 import DEFAULT_FP32_OPS, convert_fp16

    blocked = list(dict.fromkeys([*DEFAULT_FP32_OPS, *ctx.config.fp16.keep_fp32]))
    return Outcome((convert_fp16(ctx.fp32, ctx.out / FP16_ONNX, op_block_list=blocked),))


def _register_fp16(ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]) -> None:
    ctx.variants["fp16"] = Variant("fp16", ctx.out / FP16_ONNX, "fp16")


fp16_stage = StageDef("fp16", _plan_fp16, _run_fp16, _register_fp16)


# -- quantize ----------------------------------------------------------------------------------


def quantize_targets(choice: str) -> tuple[str, ...]:
    """auto: cpu where TensorRT is not installed, else both layouts."""
    if choice == "auto":
        return ("cpu", "tensorrt") if has_module("tensorrt") else ("cpu",)
    return ("cpu", "tensorrt") if choice == "all" else (choice,)


def _plan_quantize(ctx: Context) -> StagePlan | str:
    if ctx.calib is None:
        return "no calibration data: give --calib DATA"
    q = ctx.config.quantize
    targets = quantize_targets(q.target)
    spec, _ = ctx.eval_data()
    if q.max_drop is not None and spec is None:
        raise UsageError("quantize.max_drop needs evaluation data: give --eval DATA")
    # On the calibration data itself, quantize holds the evaluation images out of calibration.
    shared = spec if spec is not None and (same_data(ctx.calib, spec) or q.max_drop is not None) else None
    outputs = (
        *(ctx.out / f"model.int8.{t}.onnx" for t in targets),
        ctx.out / CALIB_CACHE,
        ctx.out / QUANTIZE_JSON,
    )
    eval_part = (ctx.config.eval.size, ctx.config.eval.seed) if shared else None
    return StagePlan(
        fingerprint(q, targets, eval_part),
        files=(ctx.fp32,),
        data=(ctx.calib,) if shared is None or same_data(ctx.calib, shared) else (ctx.calib, shared),
        outputs=outputs,
        extra={"targets": targets, "eval_data": shared},
    )


def _run_quantize(ctx: Context, plan: StagePlan) -> Outcome:
    from edgeres.quantize.workflow import QuantizeOptions, quantize

    q, targets = ctx.config.quantize, plan.extra["targets"]
    cache = ctx.out / CALIB_CACHE
    cache.unlink(missing_ok=True)  # an existing cache would be reused, not recalibrated
    split = ctx.train_split()
    record = None  # the checkpoint's validation images stay out of calibration, as in `edgeres quantize`
    if split is not None and split.get("val_indices") is not None:
        val = split["val_indices"]
        record = {"train": {"settings": {"data": split["data"]}, "split": {"val_indices": val}}}
    options = QuantizeOptions(
        training_record=record,
        calib=ctx.calib,
        target="all" if len(targets) > 1 else targets[0],
        settings=q.calibration(),
        auto_method=q.method == "auto",
        calib_size=q.calib_size,
        calib_cache=cache,
        eval_data=plan.extra["eval_data"],
        eval_size=ctx.config.eval.size,
        max_drop=q.max_drop,
        seed=q.seed,
        threads=ctx.threads,
        progress=ctx.progress,
    )
    output = ctx.out / ("model.int8.onnx" if len(targets) > 1 else f"model.int8.{targets[0]}.onnx")
    report = quantize(ctx.fp32, output, options)
    write_text_atomic(ctx.out / QUANTIZE_JSON, json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    paths = tuple(t.path for t in report.targets)
    note = f"{report.method} on {report.calib_images} images"
    return Outcome((*paths, report.cache, ctx.out / QUANTIZE_JSON), note)


def _register_quantize(
    ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]
) -> None:
    for t in plan.extra["targets"]:
        ctx.variants[f"int8-{t}"] = Variant(f"int8-{t}", ctx.out / f"model.int8.{t}.onnx", "int8", layout=t)
    ctx.sources.append(ctx.out / QUANTIZE_JSON)


quantize_stage = StageDef("quantize", _plan_quantize, _run_quantize, _register_quantize)


# -- engines -----------------------------------------------------------------------------------


def _engine_jobs(ctx: Context) -> tuple[list[tuple[str, Path, bool, Path, str]], list[str]]:
    """(variant, source ONNX, fp16 flag, engine path, precision) per engine to build, and notes."""
    e = ctx.config.engines
    jobs, notes = [], []
    for p in e.precisions:
        if p == "fp32":
            jobs.append(("engine-fp32", ctx.fp32, False, ctx.out / "model.fp32.engine", "fp32"))
        elif p == "fp16":
            if "fp16" in ctx.variants:
                jobs.append(
                    ("engine-fp16", ctx.variants["fp16"].path, False, ctx.out / "model.fp16.engine", "fp16")
                )
            else:
                notes.append("no FP16 engine: no FP16 ONNX")
        elif "int8-tensorrt" in ctx.variants:
            precision = "int8+fp16" if e.int8_fp16 else "int8"
            source = ctx.variants["int8-tensorrt"].path
            jobs.append(("engine-int8", source, e.int8_fp16, ctx.out / "model.int8.engine", precision))
        else:
            notes.append("no INT8 engine: no TensorRT-layout INT8 model (quantize.target)")
    return jobs, notes


def engine_batch(ctx: Context) -> str:
    """The engines' batch profile: engines.batch, else tuned for the largest bench batch B.

    The default ``1:B:M`` also takes the evaluation batches (M is the larger of B and the
    eval batch size), so eval runs engines at its usual batch size.
    """
    largest = max(ctx.config.bench.batches)
    return ctx.config.engines.batch or f"1:{largest}:{max(largest, ctx.config.eval.batch_size)}"


def _plan_engines(ctx: Context) -> StagePlan | str:
    why = tensorrt_unavailable()
    if why is not None:
        return why
    jobs, notes = _engine_jobs(ctx)
    if not jobs:
        return "nothing to build: " + "; ".join(notes)
    from edgeres.engine.sidecar import sidecar_path

    outputs = tuple(p for job in jobs for p in (job[3], sidecar_path(job[3])))
    return StagePlan(
        fingerprint(ctx.config.engines, engine_batch(ctx), [j[0] for j in jobs]),
        files=tuple(dict.fromkeys(j[1] for j in jobs)),
        outputs=outputs,
        extra={"jobs": jobs, "notes": notes},
    )


def _run_engines(ctx: Context, plan: StagePlan) -> Outcome:
    from edgeres.engine.build import build_engine
    from edgeres.engine.options import EngineOptions, parse_batch_profile, parse_workspace

    e = ctx.config.engines
    written: list[Path] = []
    for _, source, fp16, path, _ in plan.extra["jobs"]:
        options = EngineOptions(
            fp16=fp16,
            batch=parse_batch_profile(engine_batch(ctx)),
            workspace=parse_workspace(e.workspace) if e.workspace else None,
            output=path,
        )
        result = build_engine(source, options, progress=ctx.progress)
        written += [result.engine_path, result.sidecar_path]
    return Outcome(tuple(written), "; ".join(plan.extra["notes"]))


def _register_engines(
    ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]
) -> None:
    for name, _, _, path, precision in plan.extra["jobs"]:
        ctx.variants[name] = Variant(name, path, precision)


engines_stage = StageDef("engines", _plan_engines, _run_engines, _register_engines)
