"""Labelled image sources: the :class:`ImageSource` base, files on disk, arrays; folders and .npz.

Every source is an :class:`ImageSource`: a fixed, indexable list of images with integer
labels (-1 when unknown) and class names. The CIFAR, digits and manifest sources are
modules of their own, and :func:`edgeres.data.openers.open_source` picks the right one for
a path, so the CLI and library only ever pass a string around.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from edgeres.data.listing import IMAGE_EXTENSIONS, Listing
from edgeres.data.preprocess import MAX_ASPECT_RATIO, to_rgb
from edgeres.errors import EdgeresError, UsageError, first_line

__all__ = [
    "EXPECTED_SOURCES",
    "IMAGE_EXTENSIONS",
    "MAX_ASPECT_RATIO",
    "MAX_PIXELS",
    "ArraySource",
    "FileListSource",
    "ImageSource",
    "UnreadableImageError",
    "folder_source",
    "image_size_problem",
    "npz_source",
]


#: Images of more pixels than this are skipped before they are decoded (Pillow's own
#: decompression-bomb limit, about 89 megapixels, also stops them).
MAX_PIXELS = 89_478_485

#: What a data spec may name, as the errors say it (one phrase for each kind in
#: :mod:`edgeres.data.openers`).
EXPECTED_SOURCES = (
    "expected a folder of images (one subfolder per class, or images directly), "
    "a CIFAR batches folder, a .npz file, a .txt manifest or 'digits'"
)


class UnreadableImageError(EdgeresError):
    """One image file could not be opened or decoded (corrupt, truncated, not an image)."""


def image_size_problem(width: int, height: int) -> str | None:
    """Why an image of ``width`` x ``height`` pixels is not worth decoding, or None when it is."""
    if width < 1 or height < 1:
        return f"{width}x{height} pixels, an empty image"
    if width * height > MAX_PIXELS:
        return f"{width}x{height} pixels, more than the {MAX_PIXELS:,} edgeres decodes"
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        return f"{width}x{height} pixels, an aspect ratio beyond {MAX_ASPECT_RATIO}:1"
    return None


class ImageSource(ABC):
    """A fixed list of images with labels (-1 where unknown) and class names."""

    class_names: tuple[str, ...]

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def labels(self) -> np.ndarray:
        """int64 array of length ``len(self)``; -1 where the class is unknown."""

    @abstractmethod
    def load(self, i: int) -> Image.Image:
        """Image ``i`` as RGB; raises :class:`UnreadableImageError` when it cannot be decoded."""

    @abstractmethod
    def name(self, i: int) -> str:
        """A short, human-readable name for image ``i`` (a path or an index)."""

    @abstractmethod
    def describe(self) -> str:
        """One line saying what this source is, for logs and reports."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_labels(self) -> bool:
        return bool(len(self)) and bool((self.labels >= 0).all())

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"image index {i} out of range for {n} images")
        return i % n

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


class FileListSource(ImageSource):
    """Image files on disk, each with a label (image folders, flat folders, manifests)."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray,
        class_names: Sequence[str],
        *,
        root: Path,
        kind: str = "image folder",
    ) -> None:
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in paths)
        self._labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(self._labels) != len(self.paths):
            raise ValueError(f"{len(self._labels)} labels for {len(self.paths)} files")
        self.class_names = tuple(class_names)
        self.root = Path(root)
        self.kind = kind
        #: Entries of the folder left out when it was listed (see :func:`folder_source`).
        self.skipped_entries: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def name(self, i: int) -> str:
        return str(self.paths[self._check_index(i)])

    def load(self, i: int) -> Image.Image:
        path = self.paths[self._check_index(i)]
        try:
            with warnings.catch_warnings():  # the pixel count is checked below, with a clearer message
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(path)
            with img:
                problem = image_size_problem(*img.size)
                if problem is not None:
                    raise UnreadableImageError(f"cannot read image {path}: {problem}")
                img.load()
                return to_rgb(img)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            reason = str(exc) or type(exc).__name__
            raise UnreadableImageError(f"cannot read image {path}: {reason}") from exc

    def describe(self) -> str:
        classes = f"{self.num_classes} classes" if self.class_names else "no labels"
        left_out = f", {len(self.skipped_entries)} entries skipped" if self.skipped_entries else ""
        return f"{self.kind} {self.root} ({len(self)} images, {classes}{left_out})"


class ArraySource(ImageSource):
    """Images held in memory as uint8 (N, H, W, 3) or grayscale (N, H, W)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[int] | np.ndarray | None,
        class_names: Sequence[str],
        *,
        description: str,
    ) -> None:
        if images.dtype != np.uint8:
            raise EdgeresError(f"{description}: images must be uint8 (0..255), got {images.dtype}")
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise EdgeresError(f"{description}: images must be (N, H, W, 3) or (N, H, W), got {images.shape}")
        n = len(images)
        lab = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(lab) != n:
            raise EdgeresError(f"{description}: {len(lab)} labels for {n} images; give one label per image")
        if class_names and len(lab) and lab.max() >= len(class_names):
            raise EdgeresError(
                f"{description}: label {int(lab.max())} but only {len(class_names)} class names; "
                "give one name per class"
            )
        self.images = images
        self._labels = lab
        self.class_names = tuple(str(c) for c in class_names)
        self.description = description

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def name(self, i: int) -> str:
        return f"image {self._check_index(i)} of {self.description}"

    def load(self, i: int) -> Image.Image:
        return to_rgb(Image.fromarray(self.images[self._check_index(i)]))

    def describe(self) -> str:
        classes = f"{self.num_classes} classes" if self.class_names else "no class names"
        h, w = self.images.shape[1:3]
        return f"{self.description} ({len(self)} images {w}x{h}, {classes})"


def folder_source(root: str | Path) -> FileListSource:
    """A folder with one subfolder per class (sorted names = class indices), or flat images.

    Hidden entries (names starting with '.') are ignored; class subfolders are searched
    recursively. A flat folder gives labels -1 and no class names. Entries that cannot be
    used (see :class:`~edgeres.data.listing.Listing`) are left out with a warning and
    counted in ``skipped_entries``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; {EXPECTED_SOURCES}")
    listing = Listing()
    top = listing.entries(root)
    kinds = [(e, listing.kind(e)) for e in top]
    subdirs = [e.name for e, kind in kinds if kind == "dir"]
    per_class = {name: listing.images(root / name, recursive=True) for name in subdirs}
    if any(per_class.values()):
        paths = [p for name in subdirs for p in per_class[name]]
        labels = [k for k, name in enumerate(subdirs) for _ in per_class[name]]
        source = FileListSource(paths, labels, subdirs, root=root, kind="image folder")
    else:
        flat = [Path(e.path) for e, kind in kinds if kind == "image"]
        if not flat:
            with os.scandir(root) as it:
                empty = next(it, None) is None
            what = "is empty" if empty else "has no images (.jpg, .jpeg, .png, .bmp, .webp)"
            raise EdgeresError(f"folder {root} {what}; {EXPECTED_SOURCES}")
        source = FileListSource(flat, [-1] * len(flat), (), root=root, kind="flat image folder")
    source.skipped_entries = tuple(listing.skipped)
    return source


def npz_source(path: str | Path) -> ArraySource:
    """A .npz with ``images`` (N, H, W, 3) or (N, H, W) uint8, optional ``labels`` and class names.

    Class names come from ``class_names`` (or ``label_names``, CIFAR's word). A damaged or
    truncated file is a one-line :class:`EdgeresError`.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "images" not in npz.files:
                found = ", ".join(npz.files) or "nothing"
                raise EdgeresError(f"{path} has no 'images' array (found: {found})")
            images = npz["images"]
            labels = npz["labels"] if "labels" in npz.files else None
            key = next((k for k in ("class_names", "label_names") if k in npz.files), None)
            names = [str(c) for c in npz[key]] if key is not None else []
    except EdgeresError:
        raise
    except Exception as exc:  # a truncated zip fails in zipfile, zlib or numpy, each its own way
        reason = first_line(exc, limit=200)
        raise EdgeresError(f"cannot read {path} as a .npz of images ({reason}); re-create the file") from exc
    return ArraySource(images, labels, names, description=f"npz file {path}")
