"""Fixtures shared by the whole suite: the CLI run in-process, and small real models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CIFAR_TRAIN = REPO.parent / "shared" / "data" / "cifar10" / "train"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``edgeres ARGS`` in this process and return its exit status and output."""
    from edgeres.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def resnet20_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet20 edgeres checkpoint with random weights and CIFAR-10 metadata."""
    import torch

    from edgeres.checkpoint import save_checkpoint
    from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, ModelMeta, Preprocessing, Provenance
    from edgeres.models import get_model

    torch.manual_seed(0)
    model = get_model("resnet20", num_classes=10)
    meta = ModelMeta(
        arch="resnet20",
        num_classes=10,
        class_names=CIFAR10_CLASSES,
        preprocessing=Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD),
        provenance=Provenance(dataset="random-init", epochs=0),
    )
    return save_checkpoint(model, meta, tmp_path_factory.mktemp("ckpt") / "resnet20.pt")


@dataclass(frozen=True)
class CifarFolder:
    """CIFAR-10's image-folder layout: ``train/<class>/<NNNN>.jpg``, ``per_class`` images a class."""

    path: Path
    per_class: int
    #: True for the real 50,000 images in ../shared; False for the generated sample.
    real: bool


SAMPLE_PER_CLASS = 40


def write_cifar_sample(root: Path, per_class: int = SAMPLE_PER_CLASS, seed: int = 0) -> Path:
    """A small stand-in for the CIFAR-10 JPEG folder: 32x32 JPEGs named as the real ones are.

    Each class has its own colour and stripe direction under noise, so a model can tell the
    classes apart a little, as on real images; every image differs.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    for c, name in enumerate(CIFAR10_CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array([(37 * c) % 256, (91 * c + 60) % 256, (151 * c + 120) % 256], dtype=np.float64)
        stripes = np.sin((xx * np.cos(c) + yy * np.sin(c)) * 0.6)[..., None] * 50
        for i in range(per_class):
            noise = rng.normal(0, 40, (32, 32, 3))
            pixels = np.clip(colour + stripes + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def cifar_train(tmp_path_factory: pytest.TempPathFactory) -> CifarFolder:
    """The CIFAR-10 training folder in ../shared when it is there, else a generated sample of its layout.

    Tests that read it run everywhere (CI has no ../shared): on real images where they exist.
    """
    if CIFAR_TRAIN.is_dir():
        return CifarFolder(CIFAR_TRAIN, 5000, real=True)
    return CifarFolder(
        write_cifar_sample(tmp_path_factory.mktemp("cifar10") / "train"), SAMPLE_PER_CLASS, False
    )
