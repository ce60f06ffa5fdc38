"""The stages that make model files: export, fp16, quantize (engines: :mod:`~edgeres.pipeline.engines`).

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
from edgeres.data.holdout import TrainingSplit
from edgeres.errors import UsageError
from edgeres.pipeline.context import (
    FP16_ONNX,
    TRAIN_SPLIT,
    Context,
    Variant,
    has_module,
    onnx_fixed_batch,
    same_data,
)
from edgeres.pipeline.settings import fingerprint
from edgeres.pipeline.state import StagePlan
from edgeres.quantize.targets import Target, resolve_targets, weight_bits

__all__ = ["Outcome", "StageDef", "export_stage", "fp16_stage", "quantize_stage"]

CALIB_CACHE = "model.int8.calib.json"
QUANTIZE_JSON = "quantize.json"


@dataclass(frozen=True)
class Outcome:
    """What a stage's run wrote, a note for the summary, and data kept in the state file.

    ``finished`` False: the stage wrote its outputs but did not do all it should (bench
    rows that failed); it is not recorded, so the next run tries it again.
    """

    outputs: tuple[Path, ...]
    note: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)
    finished: bool = True


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
    split = TrainingSplit.from_checkpoint(loaded.extra)
    if split is not None:
        write_text_atomic(split_path, json.dumps(split.to_dict()) + "\n")
        outputs.append(split_path)
    else:
        split_path.unlink(missing_ok=True)
    fixed = onnx_fixed_batch(ctx.fp32)
    if fixed is not None:
        note += f"; batch fixed at {fixed}"
    return Outcome(tuple(outputs), note, info={"fixed_batch": fixed})


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
    fixed = info["fixed_batch"] if "fixed_batch" in info else onnx_fixed_batch(ctx.fp32)
    ctx.fixed_batch = fixed if isinstance(fixed, int) and fixed > 0 else None


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


@dataclass(frozen=True)
class QuantizePlan:
    targets: tuple[Target, ...]
    #: The evaluation data quantize measures accuracy on (None: it measures none).
    eval_data: str | None


def _plan_quantize(ctx: Context) -> StagePlan | str:
    if ctx.calib is None:
        return "no calibration data: give --calib DATA"
    q = ctx.config.quantize
    targets = resolve_targets(q.target)
    spec, _ = ctx.eval_data()
    if q.max_drop is not None and spec is None:
        raise UsageError("quantize.max_drop needs evaluation data: give --eval DATA")
    n = ctx.fixed_batch
    if n is not None and (q.max_drop is not None or q.method == "auto"):
        raise UsageError(
            f"quantize.max_drop and method 'auto' need a model with a dynamic batch, and "
            f"model.fp32.onnx takes batches of exactly {n}: set [export] dynamic_batch = true "
            "(or give an ONNX MODEL with a dynamic batch)"
        )
    # On the calibration data itself, quantize holds the evaluation images out of calibration.
    shared = spec if spec is not None and (same_data(ctx.calib, spec) or q.max_drop is not None) else None
    outputs = (
        *(ctx.out / f"model.int8.{t}.onnx" for t in targets),
        ctx.out / CALIB_CACHE,
        ctx.out / QUANTIZE_JSON,
    )
    eval_part = (ctx.config.eval.size, ctx.config.eval.seed) if shared else None
    return StagePlan(
        fingerprint(q, targets, eval_part, *((n,) if n is not None else ())),
        files=(ctx.fp32,),
        data=(ctx.calib,) if shared is None or same_data(ctx.calib, shared) else (ctx.calib, shared),
        outputs=outputs,
        extra=QuantizePlan(targets, shared),
    )


def _run_quantize(ctx: Context, plan: StagePlan) -> Outcome:
    from edgeres.quantize.workflow import QuantizeOptions, quantize
    from edgeres.records import QuantizeRecord, write_quantize

    q, details = ctx.config.quantize, plan.details(QuantizePlan)
    targets = details.targets
    cache = ctx.out / CALIB_CACHE
    cache.unlink(missing_ok=True)  # an existing cache would be reused, not recalibrated
    settings, calib_size, eval_size = q.calibration(), q.calib_size, ctx.config.eval.size
    n = ctx.fixed_batch
    if n is not None:
        # A fixed batch: calibrate in batches of exactly n, and let quantize's own accuracy check
        # (which runs at batch 64) see one batch only; the eval stage measures at batch n.
        settings = settings.replace(batch_size=n)
        calib_size = max(n, calib_size - calib_size % n)
        eval_size = n
    options = QuantizeOptions(
        # the checkpoint's validation images stay out of calibration, as in `edgeres quantize`
        training_split=ctx.train_split(),
        calib=ctx.calib,
        target="all" if len(targets) > 1 else targets[0],
        settings=settings,
        auto_method=q.method == "auto",
        calib_size=calib_size,
        calib_cache=cache,
        eval_data=details.eval_data,
        eval_size=eval_size,
        max_drop=q.max_drop,
        bias_correction=q.bias_correction,
        exclude=q.exclude,
        weight_bits=weight_bits(q.weight_bits),
        rounding=q.rounding,  # type: ignore[arg-type]  # checked by QuantizeSettings
        seed=q.seed,
        threads=ctx.threads,
        progress=ctx.progress,
        ignore_unknown_classes=ctx.config.eval.ignore_unknown_classes,
    )
    output = ctx.out / ("model.int8.onnx" if len(targets) > 1 else f"model.int8.{targets[0]}.onnx")
    report = quantize(ctx.fp32, output, options)
    # quantize.json names its files relative to OUT, as every result file of the pipeline does
    result = QuantizeRecord.of(report).with_paths(lambda p: ctx.rel(Path(p)))
    note = f"{report.method} on {report.calib_images} images"
    if any(t.rounding for t in report.targets):
        note += ", learned rounding"
    if any(t.bias_correction for t in report.targets):
        note += ", bias corrected"
    note += "".join(
        f"; {t.target}: {t.weight_bits}-bit weights" for t in report.targets if t.weight_bits != 8
    )
    if n is not None and details.eval_data is not None:
        # quantize's one-batch check is no accuracy to report: eval measures it
        result = result.without_accuracy(
            f"accuracy left to the eval stage: the model's batch is fixed at {n}"
        )
        note += f"; accuracy measured by eval only (batch fixed at {n})"
    write_quantize(ctx.out / QUANTIZE_JSON, result)
    paths = tuple(t.path for t in report.targets)
    return Outcome((*paths, report.cache, ctx.out / QUANTIZE_JSON), note)


def _register_quantize(
    ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]
) -> None:
    for t in plan.details(QuantizePlan).targets:
        ctx.variants[f"int8-{t}"] = Variant(f"int8-{t}", ctx.out / f"model.int8.{t}.onnx", "int8", layout=t)
    ctx.sources.append(ctx.out / QUANTIZE_JSON)


quantize_stage = StageDef("quantize", _plan_quantize, _run_quantize, _register_quantize)
