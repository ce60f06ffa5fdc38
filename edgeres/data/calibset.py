"""Pick a calibration set from an image folder and pin it down as a manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeres.data.manifest import write_manifest
from edgeres.data.sampling import stratified_sample
from edgeres.data.sources import FileListSource, open_source
from edgeres.errors import UsageError


@dataclass(frozen=True)
class CalibrationSet:
    path: Path
    num_images: int
    per_class: dict[str, int]


def make_calibration_set(data: str | Path, size: int, output: str | Path, *, seed: int = 0) -> CalibrationSet:
    """Sample ``size`` images of ``data`` (class-stratified, fixed seed) into a manifest at ``output``.

    The manifest stores relative paths and content hashes, so the set can be
    versioned beside the code and any changed image is caught when it is read.
    """
    if size < 1:
        raise UsageError(f"--size must be at least 1, got {size}")
    source = open_source(data)
    if not isinstance(source, FileListSource):
        raise UsageError(
            f"{source.describe()} is not a folder of image files; a manifest lists files, "
            "so give an image folder (class subfolders or flat)"
        )
    indices = stratified_sample(source.labels, size, seed=seed)
    rels = [source.paths[i].relative_to(source.root) for i in indices]
    path = write_manifest(source.root, rels, output, class_names=source.class_names or None)
    labels = source.labels[indices]
    names = source.class_names
    per_class = {
        (names[c] if 0 <= c < len(names) else "unlabelled"): int(n)
        for c, n in zip(*np.unique(labels, return_counts=True), strict=True)
    }
    return CalibrationSet(path, len(indices), per_class)
