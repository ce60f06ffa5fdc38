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
