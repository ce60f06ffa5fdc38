"""The CIFAR-10 JPEG folder: the real one in ../shared/data when it is there, else a sample of its layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeres.data import FileListSource, iter_batches, open_source, stratified_sample
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, Preprocessing
from tests.conftest import CifarFolder

ORDER = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

pytestmark = [pytest.mark.realdata]


def test_cifar10_image_folder(cifar_train: CifarFolder) -> None:
    src = open_source(cifar_train.path)
    assert isinstance(src, FileListSource)
    assert src.class_names == ORDER
    assert len(src) == 10 * cifar_train.per_class
    assert np.bincount(src.labels).tolist() == [cifar_train.per_class] * 10
    # labels follow the folders: every image of class k lies in the folder of ORDER[k]
    assert all(Path(src.name(i)).parent.name == ORDER[int(src.labels[i])] for i in range(0, len(src), 97))
    idx = stratified_sample(src.labels, 40, seed=0)
    assert np.bincount(src.labels[idx], minlength=10).tolist() == [4] * 10
    pre = Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    images, labels = next(iter_batches(src, idx, pre, batch_size=40))
    assert images.shape == (40, 3, 32, 32)
    assert abs(float(images.mean())) < 1.0
    np.testing.assert_array_equal(labels, src.labels[idx])
