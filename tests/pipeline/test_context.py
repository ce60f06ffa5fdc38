"""Which images the pipeline evaluates: never ones calibration used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeres.pipeline import PipelineConfig
from edgeres.pipeline.context import TRAIN_SPLIT, Context
from edgeres.pipeline.state import PipelineState


def _context(out: Path, split: dict, calib: str | None) -> Context:
    out.mkdir()
    (out / TRAIN_SPLIT).write_text(json.dumps(split))
    return Context(Path("m.pt"), out, PipelineConfig(), calib, None, False, PipelineState(out))


def test_separate_validation_data_that_also_calibrates_is_held_out(tmp_path: Path) -> None:
    """Trained with --val-data digits (no indices recorded), calibrated on digits too."""
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")
    from edgeres.data import open_source, split_indices

    ctx = _context(tmp_path / "out", {"data": "digits", "val_indices": None}, calib="digits")
    assert ctx.eval_data()[0] == "digits"
    _, indices, note = ctx.eval_images("digits")
    _, held = split_indices(open_source("digits").labels, val_fraction=0.1, seed=0)
    assert np.array_equal(np.sort(indices), np.sort(held)) and "held out from calibration" in note


def test_separate_validation_data_not_used_to_calibrate_is_used_whole(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")
    ctx = _context(tmp_path / "out", {"data": "digits", "val_indices": None}, calib=None)
    _, indices, note = ctx.eval_images("digits")
    assert len(indices) == 1797 and note == "1797 images of digits"


# -- a checkpoint's recorded split is reused only on the data it was trained on ----------------


def _fp32(root: Path, names: tuple[str, ...]) -> Path:
    from edgeres.export import export_onnx
    from edgeres.loading import load_model
    from tests.data.colour_model import colour_checkpoint

    loaded = load_model(colour_checkpoint(root / "m.pt", names))
    export_onnx(loaded.require_module(), loaded.meta, root / "model.fp32.onnx")
    return root / "model.fp32.onnx"


@pytest.fixture(scope="module")
def fp32_sorted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As edgeres train makes it from an image folder: class names in sorted folder order."""
    return _fp32(tmp_path_factory.mktemp("sorted"), ("apple", "mango", "zebra"))


def _trained_context(tmp_path: Path, fp32: Path, data: Path, num_images: int) -> Context:
    import shutil

    split = {"data": str(data), "val_indices": [0, 3, 6], "num_images": num_images}
    ctx = _context(tmp_path / "out", split, calib=None)
    shutil.copy(fp32, ctx.fp32)
    return ctx


def test_the_recorded_split_is_reused_on_the_training_data(tmp_path: Path, fp32_sorted: Path) -> None:
    from tests.data.colour_model import colour_folder

    data = colour_folder(tmp_path / "data", {"apple": 3, "mango": 3, "zebra": 3})
    ctx = _trained_context(tmp_path, fp32_sorted, data, 9)
    source, indices, note = ctx.eval_images(str(data))
    assert indices.tolist() == [0, 3, 6] and "validation images edgeres train held out" in note
    assert ctx.label_map(source).mapping.tolist() == [0, 1, 2]


def test_a_folder_with_other_classes_is_refused(tmp_path: Path, fp32_sorted: Path) -> None:
    from edgeres.errors import EdgeresError
    from tests.data.colour_model import colour_folder

    data = colour_folder(tmp_path / "data", {"apple": 3, "kiwi": 3, "zebra": 3})
    ctx = _trained_context(tmp_path, fp32_sorted, data, 9)
    with pytest.raises(EdgeresError, match=r"is not the data the checkpoint was trained on.*--eval DATA"):
        ctx.eval_images(str(data))


def test_the_split_is_not_reused_on_a_folder_that_changed(tmp_path: Path, fp32_sorted: Path) -> None:
    """Images added since training: the recorded numbers would name training images too."""
    from edgeres.errors import EdgeresError
    from tests.data.colour_model import colour_folder

    data = colour_folder(tmp_path / "data", {"apple": 4, "mango": 4, "zebra": 4})
    ctx = _trained_context(tmp_path, fp32_sorted, data, 9)
    with pytest.raises(EdgeresError, match="has 12 images but the checkpoint was trained on 9 there"):
        ctx.eval_images(str(data))


def test_the_split_record_keeps_the_number_of_images() -> None:
    from edgeres.data.holdout import TrainingSplit

    extra = {
        "train": {"settings": {"data": "d"}, "split": {"val_indices": [1], "num_train": 8, "num_val": 1}}
    }
    split = TrainingSplit.from_checkpoint(extra)
    assert split is not None and split.to_dict() == {"data": "d", "val_indices": [1], "num_images": 9}
    assert TrainingSplit.from_dict(split.to_dict()) == split
    extra["train"]["data"] = {"images": 9, "skipped": 2}  # two unreadable files were in the folder too
    split = TrainingSplit.from_checkpoint(extra)
    assert split is not None and split.num_images == 11


def test_pipeline_eval_labels_follow_the_model_class_names(tmp_path: Path) -> None:
    from edgeres.data import open_source
    from tests.data.colour_model import colour_folder

    fp32 = _fp32(tmp_path, ("zebra", "apple", "mango"))
    data = colour_folder(tmp_path / "data", {"apple": 1, "mango": 1, "zebra": 1})
    ctx = Context(Path("m.pt"), tmp_path, PipelineConfig(), None, str(data), False, PipelineState(tmp_path))
    assert ctx.fp32 == fp32
    assert ctx.label_map(open_source(data)).mapping.tolist() == [1, 2, 0]
