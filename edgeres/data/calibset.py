"""Pick a calibration set from an image folder and pin it down as a manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeres.data.manifest import write_manifest
from edgeres.data.openers import open_source
from edgeres.data.reader import SkippedImages
from edgeres.data.sampling import stratified_sample
from edgeres.data.sources import FileListSource, UnreadableImageError
from edgeres.errors import EdgeresError, UsageError

log = logging.getLogger("edgeres.data")


@dataclass(frozen=True)
class CalibrationSet:
    path: Path
    num_images: int
    per_class: dict[str, int]


def make_calibration_set(data: str | Path, size: int, output: str | Path, *, seed: int = 0) -> CalibrationSet:
    """Sample ``size`` images of ``data`` (class-stratified, fixed seed) into a manifest at ``output``.

    The manifest stores relative paths and content hashes, so the set can be
    versioned beside the code and any changed image is caught when it is read. Empty
    (0-byte) files are left out before sampling and sampled images that do not decode are
    left out after it, each with a warning; no readable image at all is an error.
    """
    if size < 1:
        raise UsageError(f"--size must be at least 1, got {size}")
    source = open_source(data)
    if not isinstance(source, FileListSource):
        raise UsageError(
            f"{source.describe()} is not a folder of image files; a manifest lists files, "
            "so give an image folder (class subfolders or flat)"
        )
    candidates = _non_empty(source)
    picked = candidates[stratified_sample(source.labels[candidates], size, seed=seed)]
    skipped = SkippedImages()
    for i in picked.tolist():
        try:
            source.load(i)
        except UnreadableImageError as exc:
            skipped.add(i, str(exc))
    indices = np.asarray([i for i in picked.tolist() if i not in skipped], dtype=np.int64)
    if not len(indices):
        raise UsageError(
            f"none of the {len(picked)} images sampled from {source.describe()} can be read "
            f"(first: {skipped.messages[0]}); fix or replace the image files"
        )
    rels = [source.paths[i].relative_to(source.root) for i in indices]
    path = write_manifest(source.root, rels, output, class_names=source.class_names or None)
    labels = source.labels[indices]
    names = source.class_names
    per_class = {
        (names[c] if 0 <= c < len(names) else "unlabelled"): int(n)
        for c, n in zip(*np.unique(labels, return_counts=True), strict=True)
    }
    return CalibrationSet(path, len(indices), per_class)


def _non_empty(source: FileListSource) -> np.ndarray:
    """Indices of the images that are not 0-byte files; a warning for the others."""
    sizes = []
    for p in source.paths:
        try:
            sizes.append(p.stat().st_size)
        except OSError:
            sizes.append(0)
    keep = np.flatnonzero(np.asarray(sizes) > 0).astype(np.int64)
    empty = len(source) - len(keep)
    if empty:
        first = next(p for p, n in zip(source.paths, sizes, strict=True) if n == 0)
        log.warning(
            "skipping %d empty (0-byte) image file(s) of %s, first: %s", empty, source.describe(), first
        )
    if not len(keep):
        raise EdgeresError(
            f"every image file of {source.describe()} is empty (0 bytes); nothing to calibrate on"
        )
    return keep
