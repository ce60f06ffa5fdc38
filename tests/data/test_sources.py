from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeres.data import (
    ArraySource,
    FileListSource,
    UnreadableImageError,
    open_source,
    preprocess,
)
from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import Preprocessing

from .conftest import CLASSES


def test_class_folder_labels_and_names(class_folder: Path) -> None:
    src = open_source(class_folder)
    assert isinstance(src, FileListSource)
    assert src.class_names == CLASSES
    assert len(src) == 6
    names = [p.name for p in src.paths]
    assert names == ["a.jpg", "b.PNG", "c_gray.png", "odd.bmp", "rgba.png", "z.JPEG"]
    assert src.labels.dtype == np.int64
    assert src.labels.tolist() == [0, 0, 0, 1, 1, 2]
    assert src.has_labels
    assert "3 classes" in src.describe() and "6 images" in src.describe()


def test_class_folder_images_load_as_rgb(class_folder: Path) -> None:
    src = open_source(str(class_folder))
    pre = Preprocessing(input_size=(32, 32))
    for i in range(len(src)):
        img = src.load(i)
        assert img.mode == "RGB"
        assert preprocess(img, pre).shape == (3, 32, 32)
    assert src.load(2).getpixel((0, 0)) == (128, 128, 128)  # grayscale PNG
    assert src.load(4).getpixel((0, 0)) == (10, 20, 30)  # RGBA PNG, alpha dropped
    assert src.load(3).size == (45, 23)  # odd-sized BMP, untouched until preprocessing


def test_flat_folder_has_unknown_labels(tmp_path: Path) -> None:
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"img{i}.webp")
    src = open_source(tmp_path)
    assert len(src) == 3
    assert src.class_names == ()
    assert src.labels.tolist() == [-1, -1, -1]
    assert not src.has_labels


def test_unreadable_image_raises_specific_error(bad_folder: Path) -> None:
    src = open_source(bad_folder)
    names = [Path(src.name(i)).name for i in range(len(src))]
    with pytest.raises(UnreadableImageError, match=r"corrupt\.jpg"):
        src.load(names.index("corrupt.jpg"))
    with pytest.raises(UnreadableImageError, match=r"truncated\.jpg"):
        src.load(names.index("truncated.jpg"))
    assert isinstance(UnreadableImageError("x"), EdgeresError)


def test_npz_source(npz_file: Path) -> None:
    src = open_source(npz_file)
    assert isinstance(src, ArraySource)
    assert src.class_names == ("red", "green", "blue")
    assert src.labels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    img = src.load(3)
    assert img.size == (16, 16) and img.mode == "RGB"
    with np.load(npz_file) as npz:
        np.testing.assert_array_equal(np.asarray(img), npz["images"][3])


def test_npz_grayscale_without_labels(tmp_path: Path) -> None:
    path = tmp_path / "gray.npz"
    np.savez(path, images=np.full((4, 10, 12), 7, np.uint8))
    src = open_source(path)
    assert src.labels.tolist() == [-1] * 4 and src.class_names == ()
    assert src.load(0).getpixel((0, 0)) == (7, 7, 7)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"pixels": np.zeros((1, 4, 4, 3), np.uint8)}, "no 'images'"),
        ({"images": np.zeros((1, 4, 4, 3), np.float32)}, "uint8"),
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0])}, "1 labels for 2 images"),
        (
            {
                "images": np.zeros((1, 4, 4, 3), np.uint8),
                "labels": np.array([3]),
                "class_names": np.array(["a"]),
            },
            "class names",
        ),
    ],
)
def test_bad_npz_is_a_usage_error(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(EdgeresError, match=message):
        open_source(path)


def test_missing_path_is_a_one_line_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        open_source(tmp_path / "nowhere")
    msg = str(info.value)
    assert "nowhere" in msg and "does not exist" in msg and "\n" not in msg


def test_empty_folder_and_folder_without_images(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdgeresError, match=r"empty.*is empty"):
        open_source(empty)
    junk = tmp_path / "junk"
    (junk / "sub").mkdir(parents=True)
    (junk / "readme.md").write_text("hi")
    (junk / "sub" / "x.txt").write_text("hi")
    with pytest.raises(EdgeresError, match=r"junk has no images"):
        open_source(junk)


def test_unknown_file_type_and_split_on_non_cifar(tmp_path: Path, class_folder: Path) -> None:
    other = tmp_path / "weights.pt"
    other.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"weights\.pt is a \.pt file"):
        open_source(other)
    with pytest.raises(UsageError, match="only applies to CIFAR"):
        open_source(class_folder, split="test")


def test_digits_source() -> None:
    pytest.importorskip("sklearn")
    src = open_source("digits")
    assert isinstance(src, ArraySource)
    assert len(src) == 1797
    assert src.class_names == tuple(str(d) for d in range(10))
    assert src.images.shape == (1797, 32, 32, 3) and src.images.dtype == np.uint8
    assert set(src.labels.tolist()) == set(range(10))
    assert src.images.max() == 255 and src.images.min() == 0
    # each 8x8 pixel became a 4x4 block, equal in R, G and B
    block = src.images[0, :4, 8:12]
    assert (block == block[0, 0]).all()


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_digits_without_sklearn_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from edgeres.data import open_source\n"
        "from edgeres.errors import MissingDependencyError\n"
        "try:\n    open_source('digits')\n"
        "except MissingDependencyError as e:\n    print('MSG', e)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "pip install edgeres[demo]" in result.stdout


def test_import_is_light() -> None:
    code = (
        "import sys, edgeres.data\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'sklearn', 'tqdm') if m in sys.modules))"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
