"""Accuracy of any runner on any image source: top-1, top-5, per class, and agreement between two runs.

Images go through :func:`edgeres.data.iter_batches`, the preprocessing calibration uses, so an
FP32 and an INT8 model see exactly the same tensors. Unreadable images are skipped (and
counted); unlabelled images (label -1) get predictions but no accuracy. With a
:class:`~edgeres.data.labels.LabelMap` (from :func:`~edgeres.data.labels.align_labels`) the
labels are the model's, matched by class name; images of classes the model lacks are left
out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeres.data import ImageSource, SkippedImages, iter_batches
from edgeres.data.labels import UNKNOWN, LabelMap
from edgeres.errors import UsageError
from edgeres.metadata import Preprocessing
from edgeres.runners.base import Runner

__all__ = ["EvalResult", "agreement", "evaluate", "flips"]


@dataclass(frozen=True)
class EvalResult:
    """Predictions and accuracy of one runner on one set of images."""

    #: Images evaluated (readable ones), labelled or not.
    num_images: int
    #: Share of labelled images whose top-1 (top-5) prediction is the label; None without labels.
    top1: float | None
    top5: float | None
    #: Class name -> (correct top-1, images), for each class with labelled images.
    per_class: dict[str, tuple[int, int]]
    #: Top-1 class index per evaluated image, in evaluation order.
    predictions: np.ndarray
    #: Label per evaluated image (-1 when unknown).
    labels: np.ndarray
    #: Unreadable images left out.
    skipped: int = 0
    #: Source index of each evaluated image.
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: Images left out because the model has no class of theirs (see ``align_labels``).
    skipped_unknown: int = 0
    #: The model's class names, by output index (empty when unknown).
    class_names: tuple[str, ...] = ()

    @property
    def num_labelled(self) -> int:
        return int((self.labels >= 0).sum())

    def summary(self) -> str:
        skipped = f", {self.skipped} unreadable skipped" if self.skipped else ""
        if self.skipped_unknown:
            skipped += f", {self.skipped_unknown} of classes the model lacks skipped"
        if self.top1 is None or self.top5 is None:
            return f"{self.num_images} images, no labels{skipped}"
        return (
            f"top-1 {100 * self.top1:.2f}%, top-5 {100 * self.top5:.2f}% "
            f"on {self.num_labelled} labelled images{skipped}"
        )

    def to_dict(self, *, include_predictions: bool = False) -> dict[str, Any]:
        """Plain data for JSON; per-image predictions, labels and indices only when asked."""
        d: dict[str, Any] = {
            "num_images": self.num_images,
            "num_labelled": self.num_labelled,
            "top1": self.top1,
            "top5": self.top5,
            "skipped": self.skipped,
            "skipped_unknown_class": self.skipped_unknown,
            "per_class": {
                name: {"correct": c, "total": t, "accuracy": c / t if t else None}
                for name, (c, t) in self.per_class.items()
            },
        }
        if include_predictions:
            d["predictions"] = self.predictions.tolist()
            d["labels"] = self.labels.tolist()
            d["indices"] = self.indices.tolist()
        return d


def evaluate(
    runner: Runner,
    source: ImageSource,
    indices: Sequence[int] | np.ndarray | None,
    pre: Preprocessing,
    *,
    batch_size: int = 64,
    progress: bool = True,
    classes: LabelMap | None = None,
) -> EvalResult:
    """Run ``runner`` on ``indices`` of ``source`` (all images when None) and score its predictions.

    ``classes`` maps the source's labels to the model's outputs (see
    :func:`edgeres.data.labels.align_labels`); without it the labels are taken as output
    indices. The runner is activated if it is not already (and then deactivated again).
    """
    if classes is not None and tuple(source.class_names) != classes.source_names:
        raise ValueError("the label map was made for another source")
    was_active = runner.is_active
    runner.activate()
    skipped = SkippedImages()
    order = (
        np.arange(len(source), dtype=np.int64)
        if indices is None
        else np.asarray(indices, dtype=np.int64).reshape(-1)
    )
    unknown = 0
    if classes is not None:
        keep = classes.remap(source.labels[order]) != UNKNOWN
        unknown = int((~keep).sum())
        order = order[keep]
    preds, top5_hits, labels = [], [], []
    try:
        for images, batch_labels in iter_batches(
            source, order, pre, batch_size, skipped=skipped, progress=progress
        ):
            logits = runner.infer(images)
            if classes is not None:
                batch_labels = classes.remap(batch_labels)
            _check_labels(batch_labels, logits.shape[1], source)
            k = min(5, logits.shape[1])
            top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
            preds.append(top[:, 0])
            top5_hits.append((top == batch_labels[:, None]).any(axis=1))
            labels.append(batch_labels)
    finally:
        if not was_active:
            runner.deactivate()
    prediction = np.concatenate(preds).astype(np.int64) if preds else np.zeros(0, np.int64)
    label = np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
    in_top5 = np.concatenate(top5_hits) if top5_hits else np.zeros(0, bool)
    kept = np.array([i for i in order.tolist() if i not in skipped], dtype=np.int64)
    labelled = label >= 0
    top1 = top5 = None
    if labelled.any():
        top1 = float((prediction[labelled] == label[labelled]).mean())
        top5 = float(in_top5[labelled].mean())
    names = classes.model_names if classes is not None else source.class_names
    per_class: dict[str, tuple[int, int]] = {}
    for cls in np.unique(label[labelled]).tolist():
        mask = label == cls
        name = names[cls] if cls < len(names) else str(cls)
        per_class[name] = (int((prediction[mask] == cls).sum()), int(mask.sum()))
    return EvalResult(
        len(prediction),
        top1,
        top5,
        per_class,
        prediction,
        label,
        skipped.count,
        kept,
        unknown,
        tuple(str(n) for n in names),
    )


def _check_labels(labels: np.ndarray, num_outputs: int, source: ImageSource) -> None:
    if len(labels) and labels.max() >= num_outputs:
        raise UsageError(
            f"{source.describe()} has label {int(labels.max())} but the model has only {num_outputs} "
            "outputs; evaluate it on a data set with the model's classes"
        )


def _aligned(a: EvalResult, b: EvalResult) -> tuple[np.ndarray, np.ndarray]:
    """Both runs' predictions in the same image order; UsageError when they cover different images."""
    if a.num_images == 0 or b.num_images == 0:
        raise UsageError("cannot compare predictions on zero images")
    pa, pb = a.predictions, b.predictions
    if not np.array_equal(a.indices, b.indices):
        oa, ob = np.argsort(a.indices, kind="stable"), np.argsort(b.indices, kind="stable")
        if not np.array_equal(a.indices[oa], b.indices[ob]):
            raise UsageError(
                f"the two evaluations cover different images ({a.num_images} and {b.num_images}, "
                "or other indices); evaluate both on the same images"
            )
        pa, pb = pa[oa], pb[ob]
    return pa, pb


def flips(result: EvalResult, reference: EvalResult) -> list[tuple[str, str, int]]:
    """(reference's class, result's class, images) for each prediction ``result`` changed, most first.

    Classes are named by the reference's class names (by index when it has none); equal
    counts are ordered by the names, so the list is the same on every run.
    """
    pr, pa = _aligned(reference, result)
    changed = pr != pa
    if not changed.any():
        return []
    pairs, counts = np.unique(np.stack([pr[changed], pa[changed]], axis=1), axis=0, return_counts=True)
    names = reference.class_names or result.class_names

    def name(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    out = [
        (name(int(b)), name(int(a)), int(n))
        for (b, a), n in zip(pairs.tolist(), counts.tolist(), strict=True)
    ]
    return sorted(out, key=lambda t: (-t[2], t[0], t[1]))


def agreement(a: EvalResult, b: EvalResult) -> float:
    """Share of images on which ``a`` and ``b`` predict the same top-1 class.

    Both must cover the same images (the same source indices, in any order); raises
    :class:`UsageError` otherwise, or when there are no images.
    """
    pa, pb = _aligned(a, b)
    return float((pa == pb).mean())
