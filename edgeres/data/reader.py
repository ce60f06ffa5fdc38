"""Batches of preprocessed images for calibration and evaluation: one code path for both.

Images are decoded and preprocessed lazily, one batch at a time, so memory stays constant
whatever the number of images. An unreadable image is logged (logger ``edgeres.data``),
counted in a :class:`SkippedImages` and left out of its batch; a pass fails only when
fewer than ``min_images`` images were usable.

:class:`BatchReader` follows ONNX Runtime's ``CalibrationDataReader`` protocol
(``get_next``/``rewind``); ONNX Runtime's ABC recognizes any class with ``get_next``, so
``isinstance(reader, CalibrationDataReader)`` holds without importing onnxruntime here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from edgeres.data.preprocess import preprocess, preprocess_array
from edgeres.data.sources import ArraySource, ImageSource, UnreadableImageError
from edgeres.errors import UsageError
from edgeres.metadata import Preprocessing

__all__ = ["BatchReader", "SkippedImages", "iter_batches", "load_batch"]

log = logging.getLogger("edgeres.data")

Indices = Sequence[int] | np.ndarray | None


class SkippedImages:
    """Images that could not be read: each logged once as a warning and counted once."""

    def __init__(self) -> None:
        self.reasons: dict[int, str] = {}  # source index -> "cannot read image <path>: <reason>"

    def add(self, index: int, message: str) -> None:
        if index not in self.reasons:
            self.reasons[index] = message
            log.warning("%s; skipping it", message)

    def __contains__(self, index: object) -> bool:
        return index in self.reasons

    def __len__(self) -> int:
        return len(self.reasons)

    @property
    def count(self) -> int:
        return len(self.reasons)

    @property
    def messages(self) -> list[str]:
        return list(self.reasons.values())

    def check(self, usable: int, total: int, min_images: int) -> None:
        """Raise :class:`UsageError` when fewer than ``min_images`` of ``total`` were usable."""
        if usable < min_images:
            first = f"; first: {self.messages[0]}" if self.reasons else ""
            raise UsageError(
                f"only {usable} of {total} images were usable ({self.count} unreadable{first}); "
                f"need at least {min_images}: fix or remove the bad files, or add more images"
            )

    def __repr__(self) -> str:
        return f"SkippedImages(count={self.count})"


def _indices(source: ImageSource, indices: Indices) -> np.ndarray:
    n = len(source)
    if indices is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise UsageError(f"image index out of range 0..{n - 1} for {source.describe()}")
    return idx


def load_batch(
    source: ImageSource, indices: np.ndarray, pre: Preprocessing, skipped: SkippedImages
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and preprocess ``indices`` of ``source``: (float32 NCHW images, int64 labels).

    Unreadable images are recorded in ``skipped`` and left out, so the batch may be smaller.
    """
    labels = source.labels
    if isinstance(source, ArraySource):
        return preprocess_array(source.images[indices], pre), labels[indices].astype(np.int64)
    arrays, kept = [], []
    for i in indices.tolist():
        if i in skipped:
            continue
        try:
            img = source.load(i)
        except UnreadableImageError as exc:
            skipped.add(i, str(exc))
            continue
        arrays.append(preprocess(img, pre))
        kept.append(i)
    h, w = pre.input_size
    images = np.stack(arrays) if arrays else np.zeros((0, 3, h, w), np.float32)
    return images, labels[np.asarray(kept, dtype=np.int64)].astype(np.int64)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")


def iter_batches(
    source: ImageSource,
    indices: Indices,
    pre: Preprocessing,
    batch_size: int = 32,
    *,
    min_images: int = 1,
    skipped: SkippedImages | None = None,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (float32 NCHW images, int64 labels) for ``indices`` (all when None), in order.

    Batches whose images are all unreadable are not yielded. After the last batch, raises
    :class:`UsageError` when fewer than ``min_images`` images were usable. Pass a
    :class:`SkippedImages` to see what was skipped.
    """
    _check_batch_size(batch_size)
    idx = _indices(source, indices)
    skipped = SkippedImages() if skipped is None else skipped
    chunks = [idx[s : s + batch_size] for s in range(0, len(idx), batch_size)]
    usable = 0
    from edgeres.progress import progress_bar

    for chunk in progress_bar(chunks, desc="images", unit="batch", enabled=progress):
        images, labels = load_batch(source, chunk, pre, skipped)
        usable += len(images)
        if len(images):
            yield images, labels
    skipped.check(usable, len(idx), min_images)


class BatchReader:
    """Rewindable calibration reader: ``get_next()`` gives ``{input_name: batch}`` or None at the end.

    Batches are fixed slices of ``indices`` (all images when None), so every pass yields the
    same batches in the same order; ``len(reader)`` is the number of batches per pass (an
    upper bound when a whole batch is unreadable). ``reader.skipped`` counts unreadable images
    once, however many passes are made.
    """

    def __init__(
        self,
        source: ImageSource,
        indices: Indices,
        pre: Preprocessing,
        input_name: str,
        batch_size: int = 32,
        *,
        min_images: int = 1,
        progress: bool = False,
    ) -> None:
        _check_batch_size(batch_size)
        self.source = source
        self.indices = _indices(source, indices)
        self.pre = pre
        self.input_name = input_name
        self.batch_size = batch_size
        self.min_images = min_images
        self.progress = progress
        self.skipped = SkippedImages()
        self._batches: Iterator[tuple[np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.indices)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._batches is None:
            self._batches = iter_batches(
                self.source,
                self.indices,
                self.pre,
                self.batch_size,
                min_images=self.min_images,
                skipped=self.skipped,
                progress=self.progress,
            )
        batch = next(self._batches, None)
        if batch is None:
            self._batches = iter(())  # stay exhausted until rewind()
            return None
        return {self.input_name: batch[0]}

    def rewind(self) -> None:
        if self._batches is not None and hasattr(self._batches, "close"):
            self._batches.close()
        self._batches = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """A fresh pass from the start (rewinds first)."""
        self.rewind()
        while (batch := self.get_next()) is not None:
            yield batch

    def __repr__(self) -> str:
        return (
            f"BatchReader({self.num_images} images in {len(self)} batches of {self.batch_size}, "
            f"input '{self.input_name}', from {self.source.describe()})"
        )
