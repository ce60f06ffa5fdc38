"""A run's images as tensors: decoded once into uint8 (N, 3, H, W) plus labels, then split.

Images are decoded, and resized to the model's input size through the shared
:func:`edgeres.data.resize_and_crop`, once before the first epoch. Image files are also cached
on disk as ``.edgeres-cache-<hash>.npz`` (the hash covers the file list, sizes, modification
times and input size; it is checked on load), written atomically into the data folder when it
is writable (the hidden name keeps it out of the listing), else ``cache_dir``,
``$XDG_CACHE_HOME/edgeres`` (~/.cache/edgeres) or the output folder. In-memory sources (CIFAR
batches, .npz, digits) are converted directly. Unreadable images, and images too small for
the network (:func:`min_image_side`), are logged on ``edgeres.data``, skipped and counted.
:func:`prepare_data` then holds out the validation images (or decodes ``val_data``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from edgeres.atomic import atomic_path
from edgeres.data import ArraySource, FileListSource, ImageSource, SkippedImages, open_source, split_indices
from edgeres.data.preprocess import resize_and_crop
from edgeres.data.sources import UnreadableImageError
from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import Preprocessing
from edgeres.train.distributed import DistInfo, barrier
from edgeres.train.settings import TrainSettings

__all__ = ["CACHE_PREFIX", "Prepared", "TensorData", "load_tensor_data", "min_image_side", "prepare_data"]

log = logging.getLogger("edgeres.train")
CACHE_PREFIX = ".edgeres-cache-"
CACHE_VERSION = 1
MAX_BYTES = 16 << 30


@dataclass(frozen=True)
class TensorData:
    """Decoded images as uint8 (N, 3, H, W) with int64 labels; ``kept`` are their source indices."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    description: str
    fingerprint: str
    kept: np.ndarray
    skipped: tuple[str, ...] = ()
    cache_path: Path | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Prepared:
    """A run's images: all of ``data`` (``train_idx`` picks the trained-on ones) and the validation set.

    ``split`` is plain data recorded in checkpoints: how the validation images were chosen
    (seed, fraction, their source indices and a sha256 of them) or which folder they came from.
    """

    data: TensorData
    train_idx: np.ndarray
    val_images: torch.Tensor
    val_labels: torch.Tensor
    split: dict[str, Any]


def prepare_data(
    settings: TrainSettings, input_size: tuple[int, int], info: DistInfo, progress: bool
) -> Prepared:
    """Decode the training (and validation) data and split it as ``settings`` say.

    Under torchrun rank 0 decodes first and writes the disk cache; the other ranks then read it.
    """
    if settings.val_data:  # check the classes before decoding anything
        names, theirs = open_source(settings.data).class_names, open_source(settings.val_data).class_names
        if names != theirs:
            raise UsageError(
                f"the validation data's classes ({_few(theirs)}) differ from the training data's "
                f"({_few(names)}); give both the same class subfolders"
            )
    kw: dict[str, Any] = dict(cache=settings.cache, cache_dir=settings.cache_dir, fallback_dir=settings.out)
    kw.update(workers=settings.workers, progress=progress and info.is_main)
    if not info.is_main:
        barrier(info)
    data = load_tensor_data(settings.data, input_size, **kw)
    val = load_tensor_data(settings.val_data, input_size, **kw) if settings.val_data else None
    if info.is_main:
        barrier(info)
    train_idx = np.arange(len(data), dtype=np.int64)
    split: dict[str, Any] = {"kind": "none", "num_train": len(data), "num_val": 0}
    if val is not None:
        split.update(kind="val_data", val_data=settings.val_data, val_fingerprint=val.fingerprint)
        split["num_val"] = len(val)
        return Prepared(data, train_idx, val.images, val.labels, split)
    if settings.val_split == 0:
        return Prepared(data, train_idx, data.images[:0], data.labels[:0], split)
    train_idx, val_idx = split_indices(data.labels.numpy(), settings.val_split, seed=settings.seed)
    chosen = data.kept[val_idx].astype(np.int64)
    split.update(kind="held_out", seed=settings.seed, val_split=settings.val_split)
    split.update(num_train=len(train_idx), num_val=len(val_idx), val_indices=torch.from_numpy(chosen))
    split["val_sha256"] = hashlib.sha256(chosen.tobytes()).hexdigest()
    idx = torch.from_numpy(val_idx)
    return Prepared(data, train_idx, data.images[idx], data.labels[idx], split)


def _few(names: tuple[str, ...], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f", ... {len(names)} in all" if len(names) > limit else "")


def min_image_side(input_size: tuple[int, int]) -> int:
    """The smallest image side worth resizing to ``input_size``: 8 px, or 1/8 of a 64+ px input."""
    side = max(input_size)
    return 8 if side < 64 else side // 8


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edgeres``, by default ~/.cache/edgeres."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeres"


def load_tensor_data(
    spec: str,
    input_size: tuple[int, int],
    *,
    cache: str = "auto",
    cache_dir: Path | None = None,
    fallback_dir: Path | None = None,
    workers: int = 0,
    progress: bool = True,
) -> TensorData:
    """Open ``spec`` (see :func:`edgeres.data.open_source`) and decode it at ``input_size``.

    Needs labelled images of at least two classes. ``cache`` is "auto"/"disk" (image files
    are cached on disk) or "memory" (decode every time).
    """
    source = open_source(spec)
    _check_labels(source)
    h, w = input_size
    need = len(source) * 3 * h * w
    if need > MAX_BYTES:
        raise UsageError(
            f"{source.describe()} takes {need / 2**30:.1f} GiB at {w}x{h} px; training keeps small-image "
            "data sets in memory: use fewer images or a network with a smaller input (CIFAR nets, 32 px)"
        )
    pre = Preprocessing(input_size=(h, w))
    if isinstance(source, ArraySource):
        return _from_arrays(source, pre, progress)
    if not isinstance(source, FileListSource):  # pragma: no cover - every file source is a FileListSource
        raise UsageError(f"{source.describe()} cannot be used for training")
    key = _fingerprint(source, pre)
    name = f"{CACHE_PREFIX}{key[:24]}.npz"
    dirs = [] if cache == "memory" else _cache_dirs(source, cache_dir, fallback_dir)
    for folder in dirs:
        if (folder / name).is_file():
            data = _read_cache(folder / name, key, source)
            if data is not None:
                return data
    images, kept, skipped = _decode(source, pre, workers, progress)
    data = _tensor_data(source, images, kept, skipped, key)
    for folder in dirs:
        if _writable(folder) and _write_cache(folder / name, data):
            return dataclasses.replace(data, cache_path=folder / name)
    if dirs:
        log.warning("no writable folder for the decoded-image cache (tried %s)", ", ".join(map(str, dirs)))
    return data


def _check_labels(source: ImageSource) -> None:
    if not len(source):
        raise UsageError(f"{source.describe()} has no images")
    if not source.has_labels or not source.class_names:
        raise UsageError(
            f"{source.describe()} has no class labels; training needs one subfolder per class "
            "(or a .npz with 'labels' and 'class_names')"
        )
    present = np.unique(source.labels)
    if len(source.class_names) < 2 or len(present) < 2:
        raise UsageError(
            f"{source.describe()} has images of only {len(present)} class; a classifier needs at least two"
        )


def _from_arrays(source: ArraySource, pre: Preprocessing, progress: bool) -> TensorData:
    arr = source.images
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    n, ih, iw = arr.shape[:3]
    side = min_image_side(pre.input_size)
    if min(ih, iw) < side:
        raise UsageError(
            f"{source.describe()}: images of {iw}x{ih} px are too small for a {pre.input_size[1]}x"
            f"{pre.input_size[0]} network input (need at least {side} px); use larger images or a CIFAR net"
        )
    if (ih, iw) != pre.input_size:
        from edgeres.progress import progress_bar

        it = progress_bar(arr, desc="resizing", unit="img", enabled=progress)
        arr = np.stack([np.asarray(resize_and_crop(Image.fromarray(a), pre), np.uint8) for a in it])
    images = np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    h = hashlib.blake2b(digest_size=16)
    h.update(f"arrays {CACHE_VERSION} {pre.input_size} {json.dumps(source.class_names)}".encode())
    h.update(source.labels.astype(np.int64).tobytes())
    h.update(images.tobytes())
    return _tensor_data(source, images, np.arange(n, dtype=np.int64), (), h.hexdigest())


def _fingerprint(source: FileListSource, pre: Preprocessing) -> str:
    h = hashlib.sha256()
    h.update(f"files {CACHE_VERSION} {pre.input_size} {min_image_side(pre.input_size)}\n".encode())
    h.update(json.dumps(source.class_names).encode())
    root = str(source.root)
    for path, label in zip(source.paths, source.labels.tolist(), strict=True):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}\0{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{os.path.relpath(path, root)}\0{label}\0{stamp}\n".encode())
    return h.hexdigest()


def _decode(
    source: FileListSource, pre: Preprocessing, workers: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Decode every image with a thread pool: (uint8 NCHW of the usable ones, their indices, skipped)."""
    from edgeres.progress import progress_bar

    n = len(source)
    th, tw = pre.input_size
    side = min_image_side(pre.input_size)
    out = np.empty((n, 3, th, tw), np.uint8)
    ok = np.zeros(n, bool)
    skipped = SkippedImages()

    def chunk(start: int) -> list[tuple[int, str | None]]:
        done: list[tuple[int, str | None]] = []
        for i in range(start, min(start + 256, n)):
            try:
                img = source.load(i)
            except UnreadableImageError as exc:
                done.append((i, str(exc)))
                continue
            if min(img.size) < side:
                done.append((i, f"image {source.name(i)} is {img.size[0]}x{img.size[1]} px, under {side} px"))
                continue
            out[i] = np.asarray(resize_and_crop(img, pre), np.uint8).transpose(2, 0, 1)
            ok[i] = True
            done.append((i, None))
        return done

    threads = workers or min(8, os.cpu_count() or 1)
    with (
        ThreadPoolExecutor(threads) as pool,
        progress_bar(total=n, desc="decoding images", unit="img", enabled=progress) as bar,
    ):
        for done in pool.map(chunk, range(0, n, 256)):
            for i, problem in done:
                if problem is not None:
                    skipped.add(i, problem)
            bar.update(len(done))
    kept = np.flatnonzero(ok).astype(np.int64)
    skipped.check(len(kept), n, min_images=2)
    if skipped.count:
        log.warning("%d of %d images skipped (unreadable or too small)", skipped.count, n)
    return (out if len(kept) == n else out[kept]), kept, tuple(skipped.messages)


def _tensor_data(
    source: ImageSource, images: np.ndarray, kept: np.ndarray, skipped: tuple[str, ...], key: str
) -> TensorData:
    labels = torch.from_numpy(source.labels[kept].astype(np.int64))
    images_t = torch.from_numpy(np.ascontiguousarray(images))
    return TensorData(images_t, labels, tuple(source.class_names), source.describe(), key, kept, skipped)


def _cache_dirs(source: FileListSource, cache_dir: Path | None, fallback: Path | None) -> list[Path]:
    if cache_dir is not None:
        return [Path(cache_dir)]
    dirs = [source.root if source.root.is_dir() else source.root.parent, user_cache_dir()]
    return dirs + ([Path(fallback)] if fallback is not None else [])


def _writable(folder: Path) -> bool:
    """Writable for us and not marked read-only (root ignores permission bits; we do not)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.access(folder, os.W_OK | os.X_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def _write_cache(path: Path, data: TensorData) -> bool:
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                version=np.int64(CACHE_VERSION),
                fingerprint=np.str_(data.fingerprint),
                images=data.images.numpy(),
                labels=data.labels.numpy(),
                kept=data.kept,
                class_names=np.array(data.class_names, dtype=str),
                skipped=np.array(data.skipped, dtype=str),
            )
    except (OSError, EdgeresError) as exc:
        log.warning("cannot write the decoded-image cache %s (%s)", path, exc)
        return False
    log.info("decoded images cached in %s", path)
    return True


def _read_cache(path: Path, key: str, source: FileListSource) -> TensorData | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or str(z["fingerprint"]) != key:
                raise ValueError("it belongs to other images")
            images, labels, kept = z["images"], z["labels"], z["kept"]
            names, skipped = tuple(str(c) for c in z["class_names"]), tuple(str(s) for s in z["skipped"])
        if not (len(images) == len(labels) == len(kept)) or names != source.class_names:
            raise ValueError("its arrays do not match")
        if not np.array_equal(labels, source.labels[kept]):
            raise ValueError("its labels do not match the files")
    except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("ignoring the decoded-image cache %s (%s); decoding again", path, exc)
        return None
    if skipped:
        log.warning("%d images were skipped when the cache was built (first: %s)", len(skipped), skipped[0])
    data = _tensor_data(source, images, kept, skipped, key)
    return dataclasses.replace(data, cache_path=path)
