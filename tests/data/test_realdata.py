"""Against the real CIFAR-10 JPEG folder in ../shared/data, when it is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeres.data import FileListSource, iter_batches, open_source, stratified_sample
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, Preprocessing

CIFAR_TRAIN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10" / "train"
ORDER = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not CIFAR_TRAIN.is_dir(), reason=f"{CIFAR_TRAIN} is not here"),
]


def test_cifar10_image_folder() -> None:
    src = open_source(CIFAR_TRAIN)
    assert isinstance(src, FileListSource)
    assert src.class_names == ORDER
    assert len(src) == 50_000
    assert np.bincount(src.labels).tolist() == [5000] * 10
    idx = stratified_sample(src.labels, 40, seed=0)
    assert np.bincount(src.labels[idx], minlength=10).tolist() == [4] * 10
    pre = Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    images, labels = next(iter_batches(src, idx, pre, batch_size=40))
    assert images.shape == (40, 3, 32, 32)
    assert abs(float(images.mean())) < 1.0
    np.testing.assert_array_equal(labels, src.labels[idx])
