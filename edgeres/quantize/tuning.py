"""Accuracy-aware quantization: choose the calibration method, keep sensitive layers in float.

Both decisions are made on *tuning* images, held out from calibration and from the
images whose accuracy is finally reported (see :mod:`edgeres.quantize.selection`).
Agreement with FP32's top-1 is the score: it moves only when predictions flip,
so it is sharper than top-1 on a few hundred images.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from edgeres.errors import UsageError
from edgeres.metadata import ModelMeta
from edgeres.quantize.ranges import Ranges
from edgeres.quantize.selection import Selection
from edgeres.quantize.settings import Method, method_names
from edgeres.quantize.targets import Target, WeightBits, faithful_to

if TYPE_CHECKING:
    from edgeres.evaluate import EvalResult
    from edgeres.quantize.collect import CalibrationStats

log = logging.getLogger(__name__)

#: Ops whose sensitivity is measured one by one for --max-drop.
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class TuningOptions:
    """What tuning needs of ``edgeres quantize``'s options."""

    #: ONNX Runtime threads for the candidate models (None: its default).
    threads: int | None = None
    #: Skip (and count) tuning images of classes the model lacks instead of failing.
    ignore_unknown_classes: bool = False
    #: The method that wins a tie in :func:`choose_method`.
    preferred_method: Method = "percentile"
    #: Top-1 points the INT8 model may lose, for :func:`keep_sensitive_in_float`.
    max_drop: float | None = None
    progress: bool = False
    #: Weight bits of the candidates of the layouts that choose them
    #: (see :data:`~edgeres.quantize.targets.WeightBits`).
    weight_bits: WeightBits = 8


class _Tuner:
    """Evaluates candidate INT8 models on the tuning images against FP32."""

    def __init__(self, fp32: Path, selection: Selection, meta: ModelMeta, opts: TuningOptions) -> None:
        if len(selection.tune_indices) == 0:
            raise UsageError("no images are left for tuning; give more calibration data")
        self.selection, self.meta, self.opts = selection, meta, opts
        self.tmp = tempfile.TemporaryDirectory(prefix="edgeres-tune-")
        self.count = 0
        self.fp32 = self.run(fp32)

    def run(self, path: Path, target: str = "fp32") -> EvalResult:
        from edgeres.data import align_labels
        from edgeres.evaluate import evaluate
        from edgeres.runners import OnnxRuntimeRunner

        s, m = self.selection, self.meta
        runner = OnnxRuntimeRunner(path, threads=self.opts.threads, disabled_optimizers=faithful_to(target))
        classes = align_labels(
            s.calib_source, m.class_names, m.num_classes, ignore_unknown=self.opts.ignore_unknown_classes
        )
        return evaluate(
            runner, s.calib_source, s.tune_indices, m.preprocessing, progress=False, classes=classes
        )

    def score(
        self, fp32: Path, ranges: Ranges, target: Target, exclude: tuple[str, ...] = ()
    ) -> tuple[float, float]:
        """(agreement with FP32, top-1 drop in points) of one candidate."""
        from edgeres.evaluate import agreement
        from edgeres.quantize.qdq import write_qdq

        self.count += 1
        path = Path(self.tmp.name) / f"candidate{self.count}.onnx"
        from edgeres.quantize.targets import bits_for

        bits = bits_for(target, self.opts.weight_bits)
        write_qdq(fp32, ranges, target, path, exclude_nodes=exclude, weight_bits=bits)
        result = self.run(path, target)
        path.unlink()
        base, top1 = self.fp32.top1, result.top1
        drop = 0.0 if base is None or top1 is None else 100 * (base - top1)
        return agreement(self.fp32, result), drop

    def close(self) -> None:
        self.tmp.cleanup()


def choose_method(
    stats: CalibrationStats,
    fp32: Path,
    target: Target,
    selection: Selection,
    meta: ModelMeta,
    opts: TuningOptions,
) -> tuple[Method, dict[str, float]]:
    """Try every method on the same statistics; keep the one that agrees best with FP32."""
    tuner = _Tuner(fp32, selection, meta, opts)
    scores: dict[Method, float] = {}
    try:
        for method in method_names(kind="histogram"):
            agree, drop = tuner.score(fp32, stats.ranges(method), target)
            scores[method] = agree
            log.info("method %s: agreement %.2f%%, top-1 drop %.2f points", method, 100 * agree, drop)
    finally:
        tuner.close()
    best = max(scores, key=lambda m: (scores[m], m == opts.preferred_method))
    return best, {str(m): v for m, v in scores.items()}


def weighted_nodes(fp32: Path) -> list[str]:
    graph = onnx.load(str(fp32), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in WEIGHTED_OPS and n.name]


def keep_sensitive_in_float(
    fp32: Path,
    ranges: Ranges,
    target: Target,
    selection: Selection,
    meta: ModelMeta,
    opts: TuningOptions,
    *,
    fixed: tuple[str, ...] = (),
) -> tuple[tuple[str, ...], dict[str, float]]:
    """The fewest most sensitive weighted layers to keep in float so the drop fits ``opts.max_drop``.

    Sensitivity of a layer is the agreement gained by keeping only it in float (besides the
    ``fixed`` layers, which stay float throughout); layers are then kept in float greedily, most
    sensitive first. Returns the layers kept (``fixed`` not included) and the sensitivity of
    every other layer (empty when the drop fitted at once).
    """
    assert opts.max_drop is not None
    tuner = _Tuner(fp32, selection, meta, opts)
    try:
        agree, drop = tuner.score(fp32, ranges, target, fixed)
        log.info("all layers int8: agreement %.2f%%, top-1 drop %.2f points", 100 * agree, drop)
        if drop <= opts.max_drop:
            return (), {}
        gains: dict[str, float] = {}
        nodes = [n for n in weighted_nodes(fp32) if n not in fixed]
        for node in _progress(nodes, opts.progress, "layer sensitivity"):
            gains[node] = tuner.score(fp32, ranges, target, (*fixed, node))[0] - agree
        kept: list[str] = []
        for node in sorted(nodes, key=lambda n: -gains[n]):
            kept.append(node)
            agree, drop = tuner.score(fp32, ranges, target, (*fixed, *kept))
            log.info("float: %s -> agreement %.2f%%, drop %.2f points", ", ".join(kept), 100 * agree, drop)
            if drop <= opts.max_drop:
                break
        else:
            log.warning("even with every weighted layer in float the drop is %.2f points", drop)
        return tuple(kept), gains
    finally:
        tuner.close()


def _progress(items: list[str], enabled: bool, desc: str) -> Any:
    if not enabled:
        return items
    from edgeres.progress import progress_bar

    return progress_bar(items, desc=desc, unit="layer")
