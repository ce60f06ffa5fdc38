"""A short run on CIFAR-10 JPEGs (a 400-image subset): the real ones in ../shared/data, else a sample."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgeres.data import write_manifest
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD
from edgeres.train import train
from edgeres.train.settings import CIFAR10_CLASSES
from tests.conftest import CifarFolder
from tests.train import tiny_settings

pytestmark = [pytest.mark.realdata]


def test_a_short_run_on_cifar10_jpegs(cifar_train: CifarFolder, tmp_path: Path) -> None:
    files = [f"{name}/{i:04d}.jpg" for name in CIFAR10_CLASSES for i in range(40)]
    manifest = write_manifest(cifar_train.path, files, tmp_path / "subset.txt", class_names=CIFAR10_CLASSES)
    s = tiny_settings(manifest, tmp_path / "run", epochs=1, batch_size=32, val_split=0.1, cache="memory")
    result = train(s, progress=False)
    meta = result.meta
    assert meta.class_names == CIFAR10_CLASSES and meta.provenance.dataset == "CIFAR-10"
    assert (meta.preprocessing.mean, meta.preprocessing.std) == (CIFAR10_MEAN, CIFAR10_STD)
    split = torch.load(result.last, weights_only=True)["extra"]["train"]["split"]
    assert split["num_train"] == 360 and split["num_val"] == 40 and result.skipped_images == 0
    assert 0.0 <= result.history[0]["val_acc"] <= 1.0
