"""Helpers for the training tests: tiny, learnable data sets and tiny runs (one thread, small batches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def tiny_images(
    n: int = 64, classes: int = 4, size: int = 32, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, size, size, 3) dark noise with a bright bar whose position gives the class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, (n, size, size, 3), dtype=np.uint8)
    step = max(1, (size - 4) // classes)
    for i, k in enumerate(labels):
        images[i, size // 4 : size // 2, 2 + step * k : 2 + step * (k + 1), k % 3] = 230
    return images, labels.astype(np.int64)


def make_npz(
    path: Path, n: int = 64, classes: int = 4, size: int = 32, seed: int = 0, names: Any = None
) -> Path:
    images, labels = tiny_images(n, classes, size, seed)
    names = [f"class{k}" for k in range(classes)] if names is None else list(names)
    np.savez(path, images=images, labels=labels, class_names=np.array(names))
    return path


def make_folder(root: Path, n: int = 24, classes: int = 3, size: int = 32, fmt: str = "png") -> Path:
    """An image folder with one subfolder per class."""
    images, labels = tiny_images(n, classes, size)
    for i, (img, k) in enumerate(zip(images, labels, strict=True)):
        folder = root / f"class{k}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:03d}.{fmt}")
    return root


def tiny_settings(data: Path | str, out: Path, **changes: Any) -> Any:
    from edgeres.train import TrainSettings

    base: dict[str, Any] = dict(
        arch="resnet20", epochs=2, batch_size=16, threads=1, val_split=0.25, cache="memory"
    )
    base.update(changes)
    return TrainSettings(data=str(data), out=out, **base)
