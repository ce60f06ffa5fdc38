"""`edgeres train` and `edgeres experiment degradation` from the command line, on tiny data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    images = (rng.integers(0, 60, (60, 32, 32, 3)) + 80 * labels[:, None, None, None]).astype(np.uint8)
    path = tmp_path_factory.mktemp("tiny") / "tiny.npz"
    np.savez(path, images=images, labels=labels, class_names=np.array(["a", "b", "c"]))
    return str(path)


def test_train_writes_checkpoints_that_export_reads_without_flags(run_cli, tiny: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "train",
        "--arch",
        "resnet20",
        "--data",
        tiny,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "-o",
        str(out),
    ]
    r = run_cli(*args, "--no-progress")
    assert r.code == 0, r.err
    assert "info: epoch 1/2" in r.err and "info: epoch 2/2" in r.err  # one line per epoch without bars
    (start,) = [line for line in r.err.splitlines() if "training resnet20" in line]
    assert start == (
        f"info: training resnet20 on npz file {tiny} (60 images 32x32, 3 classes): "
        "54 images to train on, 6 to validate on, epochs 1-2"
    )
    assert "trained 2 epochs" in r.out
    assert {p.name for p in out.iterdir()} >= {"best.pt", "last.pt", "metrics.csv", "metrics.json"}
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    again = run_cli(*args, "--no-progress")
    assert again.code != 0 and "--resume" in again.err  # an existing run is not overwritten silently
    exported = run_cli("export", str(out / "best.pt"), "-o", str(tmp_path / "m.onnx"))
    assert exported.code == 0
    assert exported.err.splitlines()[0] == "info: exporting resnet20 to ONNX (opset 17), then verifying it"


def test_degradation_draws_the_figure(run_cli, tiny: str, tmp_path: Path) -> None:
    out = tmp_path / "deg"
    r = run_cli(
        "experiment", "degradation", "--data", tiny, "--epochs", "1", "--batch-size", "16",
        "--archs", "plain20,resnet20", "-o", str(out), "--no-progress",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert (out / "degradation.png").stat().st_size > 1000
    rows = list(csv.DictReader((out / "degradation.csv").open()))
    assert {row["arch"] for row in rows} == {"plain20", "resnet20"}


def test_train_bad_input_is_one_line(run_cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli(
        "train", "--arch", "resnet20", "--data", str(empty), "--epochs", "1", "-o", str(tmp_path / "o")
    )
    assert r.code != 0 and r.err.startswith("error:") and "Traceback" not in r.err
    r = run_cli("train", "--arch", "resnet21", "--data", "digits", "--epochs", "1", "-o", str(tmp_path / "o"))
    assert r.code == 2 and "resnet20" in r.err
