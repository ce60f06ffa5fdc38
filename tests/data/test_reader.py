from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgeres.data import BatchReader, SkippedImages, iter_batches, open_source, preprocess
from edgeres.errors import UsageError
from edgeres.metadata import Preprocessing

PRE = Preprocessing(input_size=(32, 32))


def _drain(reader: BatchReader) -> list[np.ndarray]:
    out = []
    while (batch := reader.get_next()) is not None:
        assert list(batch) == ["input"]
        out.append(batch["input"])
    return out


def test_reader_rewinds_and_repeats_identical_batches(class_folder: Path) -> None:
    src = open_source(class_folder)
    reader = BatchReader(src, None, PRE, "input", batch_size=4)
    assert len(reader) == 2
    first = _drain(reader)
    assert [b.shape for b in first] == [(4, 3, 32, 32), (2, 3, 32, 32)]
    assert all(b.dtype == np.float32 for b in first)
    assert reader.get_next() is None  # stays at the end
    reader.rewind()
    second = _drain(reader)
    assert len(second) == len(first) == len(reader)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # __iter__ starts a fresh pass each time
    assert len(list(reader)) == 2 and len(list(reader)) == 2
    np.testing.assert_array_equal(first[1][1], preprocess(src.load(5), PRE))


def test_reader_is_an_onnxruntime_calibration_reader(npz_file: Path) -> None:
    quant = pytest.importorskip("onnxruntime.quantization")
    reader = BatchReader(open_source(npz_file), [0, 2, 4], PRE, "x", batch_size=2)
    assert isinstance(reader, quant.CalibrationDataReader)
    assert [b["x"].shape[0] for b in reader] == [2, 1]


def test_reader_skips_and_counts_bad_images(bad_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = open_source(bad_folder)
    reader = BatchReader(src, None, PRE, "input", batch_size=2)
    with caplog.at_level(logging.WARNING, logger="edgeres.data"):
        batches = _drain(reader)
        reader.rewind()
        again = _drain(reader)
    assert sum(len(b) for b in batches) == 3 == sum(len(b) for b in again)
    assert reader.skipped.count == 2  # counted once, despite two passes
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert any("corrupt.jpg" in m for m in warned) and any("truncated.jpg" in m for m in warned)
    assert all("skipping" in m for m in warned)


def test_too_few_usable_images_raises(bad_folder: Path) -> None:
    src = open_source(bad_folder)
    reader = BatchReader(src, None, PRE, "input", batch_size=2, min_images=4)
    with pytest.raises(UsageError, match=r"only 3 of 5 images were usable \(2 unreadable"):
        _drain(reader)
    bad = [i for i in range(len(src)) if Path(src.name(i)).name in ("corrupt.jpg", "truncated.jpg")]
    with pytest.raises(UsageError, match="only 0 of 2"):
        list(iter_batches(src, bad, PRE))


def test_iter_batches_yields_images_and_labels(class_folder: Path) -> None:
    src = open_source(class_folder)
    skipped = SkippedImages()
    batches = list(iter_batches(src, [5, 0, 3], PRE, batch_size=2, skipped=skipped))
    assert [imgs.shape for imgs, _ in batches] == [(2, 3, 32, 32), (1, 3, 32, 32)]
    assert [labels.tolist() for _, labels in batches] == [[2, 0], [1]]
    assert batches[0][1].dtype == np.int64
    assert skipped.count == 0


def test_iter_batches_array_fast_path_matches_reader(npz_file: Path) -> None:
    src = open_source(npz_file)
    images, labels = next(iter_batches(src, None, PRE, batch_size=16))
    assert images.shape == (7, 3, 32, 32)  # 16x16 arrays resized to 32x32
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    np.testing.assert_array_equal(images[4], preprocess(src.load(4), PRE))
    reader = BatchReader(src, None, PRE, "input", batch_size=16)
    np.testing.assert_array_equal(_drain(reader)[0], images)


def test_reader_argument_errors(npz_file: Path) -> None:
    src = open_source(npz_file)
    with pytest.raises(UsageError, match="batch size"):
        BatchReader(src, None, PRE, "input", batch_size=0)
    with pytest.raises(UsageError, match="out of range"):
        BatchReader(src, [0, 7], PRE, "input")
