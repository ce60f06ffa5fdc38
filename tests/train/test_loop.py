"""Training end to end on tiny data: outputs, metadata, exact resume, and failures that leave files alone."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from edgeres import load_model
from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from edgeres.train import TrainResult, train
from edgeres.train.schedule import METRIC_COLUMNS
from tests.data.conftest import write_cifar10
from tests.train import make_npz, tiny_settings


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n=48, classes=4)


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One finished 2-epoch resnet20 run, shared by the tests that only read its outputs."""
    return train(tiny_settings(data, tmp_path_factory.mktemp("run") / "out"), progress=False)


def test_a_run_writes_checkpoints_and_metrics(run: TrainResult) -> None:
    assert run.finished and run.epochs_completed == 2 and len(run.history) == 2
    for path in (run.last, run.best, run.metrics_csv, run.metrics_json):
        assert path.is_file(), path
    with run.metrics_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == METRIC_COLUMNS and [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0.0 <= float(r["val_acc"]) <= 1.0 and float(r["images_per_s"]) > 0 for r in rows)
    summary = json.loads(run.metrics_json.read_text())
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2] and summary["settings"]["arch"] == "resnet20"
    assert summary["split"]["num_val"] == 12 and summary["best_epoch"] == run.best_epoch
    assert float(rows[0]["lr"]) == pytest.approx(0.1) and float(rows[1]["lr"]) == pytest.approx(0.001)


def test_checkpoints_carry_full_metadata_and_the_split(run: TrainResult) -> None:
    last = load_model(run.last)
    meta = last.meta
    assert meta.arch == "resnet20" and meta.num_classes == 4
    assert meta.class_names == ("class0", "class1", "class2", "class3")
    assert meta.preprocessing.input_size == (32, 32)
    assert meta.preprocessing.mean != CIFAR10_MEAN  # computed from the training images
    assert meta.provenance.dataset == "tiny.npz" and meta.provenance.epochs == 2
    assert meta.provenance.accuracy == run.history[-1]["val_acc"]
    for key, value in last.require_module().state_dict().items():
        assert torch.equal(value, run.model.state_dict()[key]), key
    best = load_model(run.best).meta
    assert best.provenance.epochs == run.best_epoch and best.provenance.accuracy == run.best_val_acc
    payload = torch.load(run.last, weights_only=True)
    split = payload["extra"]["train"]["split"]
    assert split["kind"] == "held_out" and split["seed"] == 0 and len(split["val_indices"]) == 12
    assert len(split["val_sha256"]) == 64
    assert {"optimizer", "scheduler", "rng", "data_rng"} <= set(payload["extra"])
    assert "optimizer" not in torch.load(run.best, weights_only=True)["extra"]


def test_resume_is_bit_identical_to_an_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    whole = train(tiny_settings(data, tmp_path / "whole", epochs=3), progress=False)
    killed = tiny_settings(data, tmp_path / "killed", epochs=3)
    first = train(killed, progress=False, stop_after=2)
    assert not first.finished and first.epochs_completed == 2
    resumed = train(killed, resume=True, progress=False)
    assert resumed.finished and resumed.epochs_completed == 3
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["val_loss"] for r in whole.history] == [r["val_loss"] for r in resumed.history]
    again = train(killed, resume=True, progress=False)  # nothing left to do
    assert again.epochs_completed == 3 and again.finished


def test_an_existing_run_is_not_overwritten_by_accident(run: TrainResult, data: Path) -> None:
    before = run.last.read_bytes()
    with pytest.raises(UsageError, match="already holds a training run"):
        train(tiny_settings(data, run.out), progress=False)
    with pytest.raises(UsageError, match=r"other settings \(epochs: 2 -> 5\)"):
        train(tiny_settings(data, run.out, epochs=5), resume=True, progress=False)
    assert run.last.read_bytes() == before


def test_a_corrupt_checkpoint_given_to_resume(run: TrainResult, data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(run.last.read_bytes()[:5000])
    out = tmp_path / "out"
    with pytest.raises(EdgeresError) as info:
        train(tiny_settings(data, out), resume=broken, progress=False)
    assert "truncated or corrupt" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(EdgeresError, match="no training state"):
        train(tiny_settings(data, out), resume=run.best, progress=False)
    with pytest.raises(UsageError, match="nothing to resume"):
        train(tiny_settings(data, tmp_path / "empty"), resume=True, progress=False)
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_a_diverging_run_keeps_the_old_checkpoints(run: TrainResult, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    out.mkdir()
    for name in ("last.pt", "best.pt"):
        (out / name).write_bytes((run.out / name).read_bytes())
    before = {name: (out / name).read_bytes() for name in ("last.pt", "best.pt")}
    with pytest.raises(EdgeresError, match="training diverged at epoch 1"):
        train(tiny_settings(data, out, lr=1e12, epochs=1), overwrite=True, progress=False)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert not (out / "metrics.csv").exists()


def test_resume_refuses_other_data(run: TrainResult, tmp_path: Path) -> None:
    other = make_npz(tmp_path / "other.npz", n=48, classes=4, seed=9)
    with pytest.raises(UsageError, match="the data changed"):
        train(tiny_settings(other, run.out), resume=True, progress=False)


def test_cifar_data_uses_the_cifar_constants_and_no_validation(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar" / "cifar-10-batches-py", per_batch=4)
    s = tiny_settings(tmp_path / "cifar", tmp_path / "out", epochs=1, val_split=0.0, schedule="cosine")
    result = train(s, progress=False)
    pre = result.meta.preprocessing
    assert (pre.mean, pre.std) == (CIFAR10_MEAN, CIFAR10_STD)
    assert result.meta.provenance.dataset == "CIFAR-10" and result.meta.num_classes == 10
    assert result.history[0]["val_acc"] is None and result.best_epoch == 1 and result.best.is_file()
    assert ",," in result.metrics_csv.read_text()  # empty validation columns


@pytest.mark.parametrize("normalize", ["imagenet", "data"])
def test_normalization_by_name_reaches_the_checkpoint_and_binds_a_resume(
    normalize: str, tmp_path: Path
) -> None:
    """CIFAR-10's classes would get CIFAR-10's constants; a named choice overrides that."""
    write_cifar10(tmp_path / "cifar" / "cifar-10-batches-py", per_batch=4)
    s = tiny_settings(tmp_path / "cifar", tmp_path / "out", epochs=1, val_split=0.0, normalize=normalize)
    result = train(s, progress=False)
    pre = load_model(result.last).meta.preprocessing
    recorded = json.loads(result.metrics_json.read_text())
    assert recorded["settings"]["normalize"] == normalize
    assert recorded["normalization"] == {"mean": list(pre.mean), "std": list(pre.std)}
    if normalize == "imagenet":
        assert (pre.mean, pre.std) == (IMAGENET_MEAN, IMAGENET_STD)
    else:  # the statistics of these random images, nothing published
        assert pre.mean not in (IMAGENET_MEAN, CIFAR10_MEAN) and all(0.3 < m < 0.7 for m in pre.mean)
    with pytest.raises(UsageError, match=f"normalize: '{normalize}' -> 'cifar10'"):
        train(s.replace(normalize="cifar10"), resume=True, progress=False)


def test_arch_options_and_bad_output_folder(data: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        train(tiny_settings(data, tmp_path / "file"), progress=False)
    with pytest.raises(UsageError, match="takes no option"):
        train(tiny_settings(data, tmp_path / "o", arch_options={"widen": 2}), progress=False)
    s = tiny_settings(data, tmp_path / "b", epochs=1, arch_options={"shortcut": "B"}, label_smoothing=0.1)
    s = s.replace(channels_last=True, warmup_epochs=0)
    result = train(s, progress=False)
    assert load_model(result.last).meta.arch_options == {"shortcut": "B"}


@pytest.mark.parametrize("problem", ["empty folder", "one class", "other validation classes", "tiny images"])
def test_bad_input_fails_in_one_line_and_leaves_the_run_alone(
    problem: str, run: TrainResult, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "last.pt").write_bytes(run.last.read_bytes())
    before = (out / "last.pt").read_bytes()
    spec, extra = str(data), {}
    if problem == "empty folder":
        spec = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
    elif problem == "one class":
        spec = str(make_npz(tmp_path / "one.npz", n=8, classes=1))
    elif problem == "other validation classes":
        extra = {"val_data": str(make_npz(tmp_path / "v.npz", n=8, classes=4, names="abcd"))}
    else:
        spec = str(make_npz(tmp_path / "tiny.npz", n=8, classes=2, size=4))
    with pytest.raises(EdgeresError) as info:
        train(tiny_settings(spec, out, **extra), overwrite=True, progress=False)
    assert "\n" not in str(info.value)
    assert (out / "last.pt").read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["last.pt"]


def test_resume_goes_by_the_images_not_their_files_times(tmp_path: Path) -> None:
    """The same images with new modification times (a dataset copied, restored or mounted anew)
    resume; one image changed, in the training or the validation folder, is refused."""
    import os

    import numpy as np
    from PIL import Image

    from tests.train import make_folder

    train_dir, val_dir = make_folder(tmp_path / "train"), make_folder(tmp_path / "val", n=9)
    s = tiny_settings(train_dir, tmp_path / "out", epochs=3, val_data=str(val_dir), val_split=0.0)
    assert not train(s, progress=False, stop_after=1).finished
    for path in [*train_dir.rglob("*.png"), *val_dir.rglob("*.png")]:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert train(s, resume=True, progress=False, stop_after=1).epochs_completed == 2
    for folder, what in (
        (val_dir, f"the validation images of {val_dir}"),
        (train_dir, "the images of image folder"),
    ):
        image = sorted(folder.rglob("*.png"))[0]
        before = image.read_bytes()
        pixels = np.asarray(Image.open(image)).copy()
        pixels[0, 0] = 255 - pixels[0, 0]
        Image.fromarray(pixels).save(image)
        changed = f"{re.escape(what)}.* differ \\(as many images, but not the same pixels"
        with pytest.raises(UsageError, match=changed):
            train(s, resume=True, progress=False)
        image.write_bytes(before)
    assert train(s, resume=True, progress=False).finished
