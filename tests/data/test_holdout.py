"""One rule for which images may be reported on, followed alike by quantize and the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeres.data.holdout import TrainingSplit, held_out_indices, same_data
from edgeres.data.sampling import split_indices

LABELS = np.repeat(np.arange(4), 25)  # 100 images, 4 classes


def test_the_training_split_wins_on_the_data_trained_on() -> None:
    split = TrainingSplit("train-data", (1, 5, 9))
    held, note = held_out_indices(LABELS, "train-data", calib="train-data", split=split, seed=3)
    assert held is not None and held.tolist() == [1, 5, 9]
    assert note == "the 3 validation images edgeres train held out"
    # also when calibration is on other data: the reported images were never trained on
    held, _ = held_out_indices(LABELS, "train-data", calib="other", split=split)
    assert held is not None and held.tolist() == [1, 5, 9]


def test_the_calibration_data_holds_out_a_stratified_tenth() -> None:
    held, note = held_out_indices(LABELS, "calib", calib="calib", split=None, seed=3)
    _, expected = split_indices(LABELS, val_fraction=0.1, seed=3)
    assert held is not None and held.tolist() == expected.tolist() and len(held) == 10
    assert note == "10 images (10%, stratified, seed 3) held out from calibration"
    # a split of other data, or one that validated on separate data, changes nothing here
    for split in (TrainingSplit("elsewhere", (1, 2)), TrainingSplit("calib", None)):
        again, _ = held_out_indices(LABELS, "calib", calib="calib", split=split, seed=3)
        assert again is not None and again.tolist() == expected.tolist()


def test_other_data_is_used_whole() -> None:
    assert held_out_indices(LABELS, "val", calib="calib", split=None)[0] is None
    assert held_out_indices(LABELS, "val", calib=None, split=TrainingSplit("train", (1,)))[0] is None
    assert held_out_indices(LABELS, "calib", calib=None, split=None)[0] is None  # nothing calibrated


def test_same_data_resolves_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path)
    assert same_data("d", str(tmp_path / "d")) and same_data("./d", "d") and not same_data("d", "e")


def test_the_split_of_a_checkpoint_round_trips() -> None:
    extra = {"train": {"settings": {"data": "d"}, "split": {"val_indices": np.array([4, 2])}}}
    split = TrainingSplit.from_checkpoint(extra)
    assert split == TrainingSplit("d", (4, 2))
    assert TrainingSplit.from_dict(json.loads(json.dumps(split.to_dict()))) == split
    separate = {"train": {"settings": {"data": "d"}, "split": {"kind": "val_data", "val_data": "v"}}}
    assert TrainingSplit.from_checkpoint(separate) == TrainingSplit("v", None)
    assert TrainingSplit.from_checkpoint({}) is None and TrainingSplit.from_checkpoint({"train": 3}) is None
    assert TrainingSplit.from_dict({"data": 3}) is None


@pytest.mark.parametrize("case", ["trained-on", "calibration", "trained-on, calibrated elsewhere", "other"])
def test_quantize_and_the_pipeline_report_on_the_same_images(case: str, tmp_path: Path) -> None:
    """quantize's selection and the pipeline's eval stage, on the same data, pick the same images."""
    from edgeres.pipeline import PipelineConfig
    from edgeres.pipeline.context import TRAIN_SPLIT, Context
    from edgeres.pipeline.state import PipelineState
    from edgeres.quantize.selection import select_images
    from tests.data.colour_model import colour_folder

    train = colour_folder(tmp_path / "train", {"apple": 10, "mango": 10, "zebra": 10})
    other = colour_folder(tmp_path / "other", {"apple": 6, "mango": 6, "zebra": 6})
    split = TrainingSplit(str(train), (0, 4, 11, 17, 25), num_images=30)
    calib, evaluate = {
        "trained-on": (train, train),
        "calibration": (other, other),
        "trained-on, calibrated elsewhere": (other, train),
        "other": (train, other),
    }[case]
    chosen = select_images(str(calib), str(evaluate), calib_size=1000, seed=0, split=split)
    out = tmp_path / "out"
    out.mkdir()
    (out / TRAIN_SPLIT).write_text(json.dumps(split.to_dict()))
    ctx = Context(Path("m.pt"), out, PipelineConfig(), str(calib), None, False, PipelineState(out))
    _, indices, _ = ctx.eval_images(str(evaluate))
    assert chosen.eval_indices is not None
    assert sorted(chosen.eval_indices.tolist()) == sorted(indices.tolist())
    if calib == evaluate:  # and calibration never saw them
        assert not set(chosen.calib_indices.tolist()) & set(indices.tolist())
    if evaluate == train:
        assert sorted(indices.tolist()) == [0, 4, 11, 17, 25]
