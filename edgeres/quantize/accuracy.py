"""``quantize --eval``: the FP32 model and each INT8 model on the same held-out images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeres.quantize.targets import faithful_to

if TYPE_CHECKING:
    from edgeres.metadata import ModelMeta
    from edgeres.quantize.selection import Selection
    from edgeres.quantize.workflow import QuantizeOptions, QuantizeReport

__all__ = ["evaluate_targets"]


def evaluate_targets(
    report: QuantizeReport, selection: Selection, meta: ModelMeta, opts: QuantizeOptions
) -> QuantizeReport:
    """FP32's and each INT8 model's accuracy on the evaluation images, and their agreement."""
    from dataclasses import replace

    from edgeres.data import align_labels
    from edgeres.evaluate import agreement, evaluate
    from edgeres.quantize.saturation import saturation_caveat
    from edgeres.runners import OnnxRuntimeRunner

    source = selection.eval_source
    assert source is not None
    classes = align_labels(
        source, meta.class_names, meta.num_classes, ignore_unknown=opts.ignore_unknown_classes
    )

    def run(path: Path, target: str = "fp32") -> Any:
        runner = OnnxRuntimeRunner(path, threads=opts.threads, disabled_optimizers=faithful_to(target))
        pre = meta.preprocessing
        return evaluate(runner, source, selection.eval_indices, pre, progress=opts.progress, classes=classes)

    base = run(report.fp32_onnx)
    targets = []
    for t in report.targets:
        r = run(t.path, t.target)
        drop = None if base.top1 is None or r.top1 is None else 100 * (base.top1 - r.top1)
        targets.append(
            replace(
                t,
                top1=r.top1,
                top5=r.top5,
                agreement=agreement(base, r),
                drop=drop,
                per_class=r.per_class,
                caveat=saturation_caveat(t.path, "onnxruntime", "cpu"),
            )
        )
    return replace(
        report, targets=tuple(targets), fp32_top1=base.top1, fp32_top5=base.top5, eval_images=base.num_images
    )
