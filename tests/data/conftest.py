"""Tiny real data sets, written to tmp_path: image folders, CIFAR-format pickles, npz files."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("cat", "dog", "zebra")


def solid(size: tuple[int, int], color: tuple[int, int, int]) -> Image.Image:
    """An RGB image of ``size`` (width, height) filled with ``color``."""
    return Image.new("RGB", size, color)


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    w, h = size
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """cat/ (3 images: JPEG, .PNG, grayscale PNG), dog/ (2: RGBA PNG, odd-sized BMP), zebra/ (1 JPEG).

    Also a hidden folder and a non-image file that must be ignored.
    """
    root = tmp_path / "classes"
    for name in CLASSES:
        (root / name).mkdir(parents=True)
    solid((32, 32), (255, 0, 0)).save(root / "cat" / "a.jpg", quality=95)
    solid((32, 32), (0, 255, 0)).save(root / "cat" / "b.PNG", format="PNG")
    Image.new("L", (32, 32), 128).save(root / "cat" / "c_gray.png")
    Image.new("RGBA", (32, 32), (10, 20, 30, 0)).save(root / "dog" / "rgba.png")
    noise((45, 23), seed=1).save(root / "dog" / "odd.bmp")
    solid((40, 40), (0, 0, 255)).save(root / "zebra" / "z.JPEG")
    (root / "zebra" / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    solid((8, 8), (1, 2, 3)).save(root / ".cache" / "hidden.png")
    return root


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    """A flat folder: 3 good PNGs, one corrupt 'JPEG' (random bytes) and one truncated JPEG."""
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(3):
        noise((32, 32), seed=i).save(root / f"good{i}.png")
    (root / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    whole = jpeg_bytes(noise((64, 64), seed=9))
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return root


def _cifar_batch(n: int, start_label: int, num_classes: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [(start_label + k) % num_classes for k in range(n)]
    return data, labels


def write_cifar10(folder: Path, per_batch: int = 4) -> Path:
    """The official cifar-10-batches-py layout, with ``per_batch`` images in each batch."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        data, labels = _cifar_batch(per_batch, i, 10, seed=i)
        batch = {b"batch_label": f"training batch {i} of 5".encode(), b"labels": labels, b"data": data}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    data, labels = _cifar_batch(per_batch, 0, 10, seed=0)
    test = {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data}
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    meta = {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    """A folder holding cifar-10-batches-py/ (5 x 4 training images, 4 test images)."""
    root = tmp_path / "cifar"
    write_cifar10(root / "cifar-10-batches-py")
    return root


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Path:
    """The cifar-100-python layout: train (6 images), test (3), meta with 5 fine classes."""
    folder = tmp_path / "c100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, n in (("train", 6), ("test", 3)):
        data, labels = _cifar_batch(n, 0, 5, seed=n)
        batch = {b"data": data, b"fine_labels": labels, b"coarse_labels": [0] * n}
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {
        b"fine_label_names": [b"apple", b"bee", b"cup", b"dolphin", b"elm"],
        b"coarse_label_names": [b"x"],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "set.npz"
    np.savez(
        path,
        images=rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8),
        labels=np.array([0, 1, 2, 0, 1, 2, 0]),
        class_names=np.array(["red", "green", "blue"]),
    )
    return path
