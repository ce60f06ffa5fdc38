"""``edgeres quantize`` as a library call: export, calibrate once, write each target, evaluate.

One calibration pass serves every target and every method: the histograms are
kept, so ``--method auto`` and the calibration cache cost no second pass.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeres.data.holdout import TrainingSplit
from edgeres.errors import UsageError
from edgeres.loading import LoadedModel, MetaOverrides, load_model
from edgeres.metadata import ModelMeta
from edgeres.quantize.adaround import ROUNDINGS, Rounding, RoundingSettings
from edgeres.quantize.ranges import Ranges
from edgeres.quantize.selection import Selection, select_images
from edgeres.quantize.settings import CalibrationSettings, Method, get_method
from edgeres.quantize.targets import (
    DEFAULT_WEIGHT_BITS,
    TARGETS,
    Target,
    TargetChoice,
    WeightBits,
    WeightBitsChoice,
    bits_for,
    default_target,
    faithful_to,
    resolve_targets,
    resolve_weight_bits,
    weight_bits,
)
from edgeres.quantize.tuning import TuningOptions

__all__ = [
    "TARGETS",
    "Calibration",
    "QuantizeOptions",
    "QuantizeReport",
    "TargetReport",
    "calibrate",
    "default_output",
    "default_target",
    "faithful_to",
    "quantize",
    "resolve_targets",
    "write_targets",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizeOptions:
    """Everything ``edgeres quantize`` is asked to do besides the model and the output."""

    calib: str | None = None
    target: TargetChoice = "auto"
    settings: CalibrationSettings = field(default_factory=CalibrationSettings)
    auto_method: bool = False
    calib_size: int = 512
    calib_cache: Path | None = None
    eval_data: str | None = None
    eval_size: int | None = None
    max_drop: float | None = None
    seed: int = 0
    threads: int | None = None
    progress: bool = True
    #: ``edgeres train``'s split when the model is an ONNX exported from its checkpoint: its
    #: validation images are then held out, as for the checkpoint (which records its own).
    training_split: TrainingSplit | None = field(default=None, compare=False)
    #: Evaluation and tuning skip (and count) images of classes the model lacks instead of failing.
    ignore_unknown_classes: bool = False
    #: Remove the mean output shift of each layer's int8 weights from its bias (one more pass over
    #: the calibration images per target; see :mod:`edgeres.quantize.bias_correction`). None, the
    #: default, is on, except where a reused calibration cache keeps no correction for the layout
    #: and no calibration images are given to measure one (then off, and said so); True insists.
    bias_correction: bool | None = None
    #: Node names or fnmatch patterns of layers to keep in float (``--exclude``).
    exclude: tuple[str, ...] = ()
    #: Bits of the cpu layout's weights (``--weight-bits``): auto, 8 or 7; see :data:`WeightBits`.
    weight_bits: WeightBitsChoice = DEFAULT_WEIGHT_BITS
    #: How weights round to integers (``--rounding``): "nearest", or "adaround", learned layer by
    #: layer on the calibration images (see :mod:`edgeres.quantize.adaround`) with ``rounding_settings``.
    rounding: Rounding = "nearest"
    rounding_settings: RoundingSettings = field(default_factory=RoundingSettings)

    def __post_init__(self) -> None:
        d = self.max_drop
        if d is not None:
            if isinstance(d, bool) or not isinstance(d, int | float) or not (math.isfinite(d) and d >= 0):
                raise UsageError(f"--max-drop must be a finite number of top-1 points, at least 0, got {d!r}")
            if self.eval_data is None:
                raise UsageError("--max-drop needs --eval DATA to measure the top-1 drop on")
        for name in ("calib_size", "eval_size", "threads"):
            n = getattr(self, name)
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} must be a whole number of at least 1, got {n!r}")
        weight_bits(self.weight_bits)  # a UsageError for anything but auto, 8 or 7
        if self.rounding not in ROUNDINGS:
            raise UsageError(f"--rounding must be one of {', '.join(ROUNDINGS)}, got {self.rounding!r}")
        if self.calib is None and (self.calib_cache is None or not Path(self.calib_cache).exists()):
            raise UsageError("give calibration images with --calib, or an existing --calib-cache")


def default_output(model: str | os.PathLike[str]) -> Path:
    """The base of the INT8 models' names when no ``-o`` is given: ``MODEL.int8.onnx`` beside the model
    (a ``.fp32`` tag replaced, see :mod:`edgeres.naming`); each target adds its layout."""
    from edgeres.naming import derived_path

    return derived_path(model, "int8", ".onnx")


def output_paths(model: Path, output: Path | None, targets: tuple[Target, ...]) -> dict[Target, Path]:
    """``-o`` for one target; with several, ``-o`` names the stem and each gets a suffix.

    Without ``-o`` every model names its layout, one target or several: ``MODEL.int8.cpu.onnx``.
    """
    if len(targets) == 1 and output is not None:
        return {targets[0]: output}
    base = output if output is not None else default_output(model)
    stem = base.name[: -len(".onnx")] if base.name.endswith(".onnx") else base.name
    return {t: base.with_name(f"{stem}.{t}.onnx") for t in targets}


@dataclass(frozen=True)
class TargetReport:
    target: str
    path: Path
    num_quantized_nodes: int
    excluded_nodes: tuple[str, ...] = ()
    top1: float | None = None
    top5: float | None = None
    agreement: float | None = None
    #: Top-1 points lost against FP32 on the evaluation images (positive = worse).
    drop: float | None = None
    per_class: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Layer -> top-1 agreement gained (a fraction) when only it stays float; measured by --max-drop.
    sensitivity: dict[str, float] = field(default_factory=dict)
    #: What bias correction did (:meth:`BiasCorrection.to_dict`), when it ran.
    bias_correction: dict[str, Any] | None = None
    weight_bits: int = 8
    #: What learned rounding did (:meth:`LearnedRounding.to_dict`), when it ran.
    rounding: dict[str, Any] | None = None
    #: Why the accuracy measured here differs from the model's elsewhere (saturating CPU kernels).
    caveat: str | None = None


@dataclass(frozen=True)
class QuantizeReport:
    fp32_onnx: Path
    meta: ModelMeta
    method: str
    cache: Path
    calib_images: int
    reused_cache: bool
    targets: tuple[TargetReport, ...]
    fp32_top1: float | None = None
    fp32_top5: float | None = None
    eval_images: int = 0
    selection_note: str = ""
    method_scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["meta"] = self.meta.to_dict()
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _fp32_onnx(loaded: LoadedModel, out_dir: Path, stem: str) -> Path:
    if loaded.is_onnx:
        assert loaded.path is not None
        return loaded.path
    from edgeres.export import export_onnx

    path = out_dir / f"{stem}.fp32.onnx"
    result = export_onnx(loaded.require_module(), loaded.meta, path)
    log.info("exported %s", result.summary())
    return path


def _calib_hash(selection: Selection) -> str:
    h = hashlib.sha256(selection.calib_source.describe().encode())
    for i in selection.calib_indices.tolist():
        h.update(selection.calib_source.name(i).encode())
    return h.hexdigest()


def _check_classes(meta: ModelMeta, selection: Selection, opts: QuantizeOptions) -> None:
    """Labels meet the model by class name (see :func:`edgeres.data.align_labels`); fail early."""
    from edgeres.data import align_labels

    tuned = len(selection.tune_indices) > 0
    for source in (selection.eval_source, selection.calib_source if tuned else None):
        if source is not None:
            align_labels(
                source, meta.class_names, meta.num_classes, ignore_unknown=opts.ignore_unknown_classes
            )


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` found: the ranges of one model, by one method, and where they are kept."""

    ranges: Ranges
    method: Method
    num_images: int
    cache: Path
    reused_cache: bool
    #: Agreement with FP32 of each method ``--method auto`` tried.
    method_scores: dict[str, float] = field(default_factory=dict)


def tuning_options(opts: QuantizeOptions) -> TuningOptions:
    return TuningOptions(
        threads=opts.threads,
        ignore_unknown_classes=opts.ignore_unknown_classes,
        preferred_method=opts.settings.method,
        max_drop=opts.max_drop,
        progress=opts.progress,
        weight_bits=resolve_weight_bits(opts.weight_bits),
    )


def calibrate(
    fp32: Path,
    meta: ModelMeta,
    selection: Selection | None,
    cache: Path,
    opts: QuantizeOptions,
    first_target: Target,
) -> Calibration:
    """The activation ranges of ``fp32``: from ``opts.calib_cache`` when it exists, else calibrated.

    A fresh calibration is saved to ``cache``. ``--method auto`` tries every histogram method on
    the tuning images, with the layout of ``first_target``.
    """
    from edgeres.data import BatchReader
    from edgeres.quantize.cache import load_cache, model_sha256, save_cache
    from edgeres.quantize.collect import CalibrationResult, collect_statistics

    model_hash = model_sha256(fp32)
    if opts.calib_cache is not None and Path(opts.calib_cache).exists():
        ranges, info = load_cache(cache, model_hash=model_hash)
        log.info("reusing calibration cache %s (%s, %d images)", cache, info.method, info.num_images)
        return Calibration(ranges, info.method, info.num_images, cache, reused_cache=True)
    assert selection is not None
    reader = BatchReader(
        selection.calib_source, selection.calib_indices, meta.preprocessing, "input", 32, progress=False
    )
    method: Method = opts.settings.method
    spec = get_method(method)
    scores: dict[str, float] = {}
    if spec.kind == "data":  # the method runs the model itself
        import time

        start = time.perf_counter()
        ranges = spec.load()(fp32, reader, opts.settings)
        result = CalibrationResult(
            ranges, len(selection.calib_indices), method, opts.settings, time.perf_counter() - start, 0.0
        )
    else:
        stats = collect_statistics(fp32, reader, opts.settings, progress=opts.progress)
        if opts.auto_method:
            from edgeres.quantize.tuning import choose_method

            method, scores = choose_method(stats, fp32, first_target, selection, meta, tuning_options(opts))
        ranges = stats.ranges(method)
        result = CalibrationResult(
            ranges,
            stats.num_images,
            method,
            opts.settings.replace(method=method),
            stats.seconds,
            stats.peak_rss_mb,
        )
    save_cache(cache, result, model_hash, _calib_hash(selection))
    return Calibration(ranges, method, result.num_images, cache, reused_cache=False, method_scores=scores)


def write_targets(
    fp32: Path,
    calibration: Calibration,
    outputs: Mapping[Target, Path],
    meta: ModelMeta,
    selection: Selection | None,
    opts: QuantizeOptions,
) -> tuple[TargetReport, ...]:
    """One Q/DQ model per target from one calibration; ``--max-drop`` keeps sensitive layers float."""
    from edgeres.quantize.exclude import resolve_excludes
    from edgeres.quantize.qdq import write_qdq

    manual = resolve_excludes(fp32, opts.exclude)
    reports = []
    for target, path in outputs.items():
        recorded = {
            "method": calibration.method,
            "images": calibration.num_images,
            "cache": calibration.cache.name,
        }
        exclude = manual
        bits: WeightBits = bits_for(target, opts.weight_bits)
        sensitivity: dict[str, float] = {}
        if opts.max_drop is not None and selection is not None:
            from edgeres.quantize.tuning import keep_sensitive_in_float

            tuned, sensitivity = keep_sensitive_in_float(
                fp32, calibration.ranges, target, selection, meta, tuning_options(opts), fixed=manual
            )
            exclude = manual + tuned
        corrected = qdq = rounded = None
        if opts.bias_correction is not False or opts.rounding != "nearest":
            from edgeres.quantize.refine_step import refined

            done = refined(fp32, path, calibration, target, meta, selection, exclude, opts, bits)
            if done is not None:
                qdq, corrected, rounded = done
        if qdq is None:
            qdq = write_qdq(
                fp32, calibration.ranges, target, path, exclude_nodes=exclude, calibration=recorded,
                weight_bits=bits,
            )  # fmt: skip
        kept = qdq.excluded_nodes
        reports.append(
            TargetReport(
                target,
                qdq.path,
                qdq.num_quantized_nodes,
                kept,
                sensitivity=sensitivity,
                bias_correction=corrected,
                weight_bits=bits,
                rounding=rounded,
            )
        )
    return tuple(reports)


def quantize(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    options: QuantizeOptions | None = None,
    *,
    arch: str | None = None,
    overrides: MetaOverrides | None = None,
) -> QuantizeReport:
    """Quantize ``model`` to INT8 Q/DQ ONNX; see :mod:`edgeres.quantize` and ``edgeres quantize --help``."""
    opts = options or QuantizeOptions()
    loaded = load_model(model, arch, overrides=overrides)
    targets = resolve_targets(opts.target)
    outputs = output_paths(Path(model), Path(output) if output else None, targets)
    first = next(iter(outputs.values()))
    out_dir = first.parent if str(first.parent) else Path(".")
    if not out_dir.is_dir():
        raise UsageError(f"output folder '{out_dir}' does not exist; create it or choose another -o")
    meta = loaded.meta
    selection = None
    if opts.calib is not None:
        selection = select_images(
            opts.calib,
            opts.eval_data,
            calib_size=opts.calib_size,
            eval_size=opts.eval_size,
            seed=opts.seed,
            split=opts.training_split or TrainingSplit.from_checkpoint(loaded.extra),
            tune=opts.auto_method or opts.max_drop is not None,
        )
        _check_classes(meta, selection, opts)
    fp32 = _fp32_onnx(loaded, out_dir, Path(model).stem)  # after the data checks: nothing written on bad data
    base = Path(output) if output else default_output(model)
    cache = opts.calib_cache or base.with_name(base.name.removesuffix(".onnx") + ".calib.json")
    if opts.exclude:  # a typo must fail before calibration, not after it
        from edgeres.quantize.exclude import resolve_excludes

        resolve_excludes(fp32, opts.exclude)
    calibration = calibrate(fp32, meta, selection, cache, opts, targets[0])
    report = QuantizeReport(
        fp32,
        meta,
        calibration.method,
        cache,
        calibration.num_images,
        calibration.reused_cache,
        write_targets(fp32, calibration, outputs, meta, selection, opts),
        selection_note=selection.note if selection else "",
        method_scores=calibration.method_scores,
    )
    if selection is not None and selection.eval_source is not None:
        from edgeres.quantize.accuracy import evaluate_targets

        report = evaluate_targets(report, selection, meta, opts)
    return report
