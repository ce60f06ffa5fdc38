"""A tiny digits model and one full pipeline run, shared by the pipeline tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeres.pipeline.results import PipelineResult
from edgeres.pipeline.settings import (
    BenchSettings,
    EvalSettings,
    ExportSettings,
    OpenVinoSettings,
    PipelineConfig,
    QuantizeSettings,
)


def _fast_config(*, openvino: bool = False) -> PipelineConfig:
    """OpenVINO is off unless asked for: its variants add seconds to every run, and the tests
    of them run the pipeline with it on (``openvino_run``)."""
    return PipelineConfig(
        export=ExportSettings(exporter="torchscript"),
        quantize=QuantizeSettings(calib_size=32),
        eval=EvalSettings(size=64),
        bench=BenchSettings(batches=(1,), warmup=1, iters=3),
        openvino=OpenVinoSettings(enabled=openvino),
    )


@pytest.fixture
def fast_config() -> PipelineConfig:
    """Small enough for a test: 32 calibration images, 64 evaluated, 3 timed runs."""
    return _fast_config()


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet20 for the digits classes whose predictions vary, recording (like edgeres train) its split."""
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn (pip install edgeres[demo])")
    import torch

    from edgeres.checkpoint import save_checkpoint
    from edgeres.data import open_source, split_indices
    from edgeres.export.fold import randomize_batchnorm
    from edgeres.metadata import ModelMeta, Preprocessing, Provenance
    from edgeres.models import get_model
    from tests.fitted import fit_head

    torch.manual_seed(0)
    model = get_model("resnet20", num_classes=10)
    randomize_batchnorm(model, seed=0)  # and a fitted head: default statistics predict one class
    digits = open_source("digits")
    train_idx, val = split_indices(digits.labels, 0.1, seed=0)
    fit_head(model, digits.images[train_idx[:300]], digits.labels[train_idx[:300]], (0.5,) * 3, (0.25,) * 3)
    meta = ModelMeta(
        arch="resnet20",
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        preprocessing=Preprocessing(input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        provenance=Provenance(dataset="digits", epochs=0),
    )
    train = {
        "settings": {"data": "digits"},
        "split": {"kind": "held_out", "val_indices": torch.from_numpy(val)},
    }
    path = tmp_path_factory.mktemp("digits") / "r20-digits.pt"
    return save_checkpoint(model, meta, path, extra={"train": train})


@pytest.fixture(scope="session")
def first_run(
    digits_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, PipelineResult]:
    """The pipeline run once into a fresh folder: (folder, PipelineResult). Copy the folder to change it."""
    from edgeres.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("pipeline") / "out"
    result = run_pipeline(digits_checkpoint, out, _fast_config(), calib="digits", progress=False)
    return out, result


@pytest.fixture(scope="session")
def openvino_run(
    digits_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, PipelineResult]:
    """As ``first_run``, with OpenVINO on (where it is not installed, its stage notes say so)."""
    from edgeres.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("pipeline-openvino") / "out"
    config = _fast_config(openvino=True)
    return out, run_pipeline(digits_checkpoint, out, config, calib="digits", progress=False)


@pytest.fixture
def copied_run(first_run: tuple[Path, PipelineResult], tmp_path: Path) -> Path:
    """A copy of the first run's folder, times kept, to run again and change."""
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    return out
