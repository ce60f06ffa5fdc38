"""Labels meet a model's outputs by class name: a real resnet20 whose classes are not sorted."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgeres.data import ArraySource, align_labels, open_source
from edgeres.data.labels import UNKNOWN
from edgeres.errors import EdgeresError
from edgeres.evaluate import evaluate
from edgeres.loading import load_model
from edgeres.runners import make_runner
from tests.data.colour_model import COLOURS, UNSORTED, colour_checkpoint, colour_folder


@pytest.fixture(scope="module")
def unsorted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_checkpoint(tmp_path_factory.mktemp("model") / "unsorted.pt")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return colour_folder(tmp_path / "data", {"apple": 3, "mango": 2, "zebra": 4})


def _evaluate(model: Path, data: str | Path, *, ignore: bool = False):  # type: ignore[no-untyped-def]
    loaded = load_model(model)
    source = open_source(data)
    meta = loaded.meta
    classes = align_labels(source, meta.class_names, meta.num_classes, ignore_unknown=ignore)
    return evaluate(
        make_runner(loaded.module), source, None, meta.preprocessing, progress=False, classes=classes
    )


def test_folder_labels_follow_the_model_class_names(unsorted_model: Path, folder: Path) -> None:
    source = open_source(folder)
    assert source.class_names == ("apple", "mango", "zebra")  # sorted: not the model's order
    classes = align_labels(source, UNSORTED, 3)
    assert classes.by_name and classes.mapping.tolist() == [1, 2, 0]
    result = _evaluate(unsorted_model, folder)
    assert result.top1 == 1.0 and result.num_labelled == 9  # sorted folder order would score 0%
    assert result.per_class == {"apple": (3, 3), "mango": (2, 2), "zebra": (4, 4)}
    assert result.skipped_unknown == 0


def test_a_folder_the_model_lacks_is_an_error_naming_it(unsorted_model: Path, tmp_path: Path) -> None:
    data = colour_folder(tmp_path / "data", {"apple": 2, "kiwi": 2, "zebra": 2})
    with pytest.raises(EdgeresError, match=r"class.*the model does not have: 'kiwi'") as err:
        align_labels(open_source(data), UNSORTED, 3)
    assert "\n" not in str(err.value) and "--ignore-unknown-classes" in str(err.value)


def test_with_ignore_unknown_those_images_are_skipped_and_counted(
    unsorted_model: Path, tmp_path: Path
) -> None:
    data = colour_folder(tmp_path / "data", {"apple": 2, "kiwi": 3, "zebra": 2})
    result = _evaluate(unsorted_model, data, ignore=True)
    assert result.top1 == 1.0 and result.num_images == 4 and result.skipped_unknown == 3
    assert "3 of classes the model lacks skipped" in result.summary()
    assert result.to_dict()["skipped_unknown_class"] == 3
    assert set(result.per_class) == {"apple", "zebra"}
    assert sorted(result.indices.tolist()) == [0, 1, 5, 6]  # kiwi's images (2, 3, 4) left out


def test_a_model_without_names_keeps_sorted_order_and_says_so(
    tmp_path: Path, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sorted_model = colour_checkpoint(tmp_path / "sorted.pt", ("apple", "mango", "zebra"), named=False)
    with caplog.at_level(logging.WARNING, logger="edgeres.data"):
        result = _evaluate(sorted_model, folder)
    assert result.top1 == 1.0 and set(result.per_class) == {"apple", "mango", "zebra"}
    notices = [r.getMessage() for r in caplog.records if "no class names" in r.getMessage()]
    assert len(notices) == 1 and "sorted folder order" in notices[0]


def test_a_nameless_model_with_more_outputs_than_folders_is_an_error(tmp_path: Path) -> None:
    """Sorted order pairs folders with outputs only when there are as many of each: 2 named folders
    on a 3-output model without names (or 10 on a 1000-output ImageNet model) would be scored
    against outputs 0 and 1 whatever they are."""
    model = colour_checkpoint(tmp_path / "m.pt", ("apple", "mango", "zebra"), named=False)
    data = colour_folder(tmp_path / "data", {"apple": 1, "mango": 1})
    with pytest.raises(EdgeresError, match="has 2 classes and the model 3 outputs with no class names"):
        _evaluate(model, data)


def test_labels_past_the_model_outputs_are_an_error(tmp_path: Path) -> None:
    model = colour_checkpoint(tmp_path / "m.pt", ("apple", "mango", "zebra"), named=False)
    data = colour_folder(tmp_path / "data", {"apple": 1, "kiwi": 1, "mango": 1, "zebra": 1})
    with pytest.raises(EdgeresError, match="class 'zebra' \\(number 3\\) but the model has only 3 outputs"):
        _evaluate(model, data)


def test_npz_class_names_are_matched_by_name(unsorted_model: Path, tmp_path: Path) -> None:
    names = ["mango", "zebra", "apple"]  # yet another order
    labels = np.array([0, 1, 2, 2, 1])
    images = np.stack([np.full((32, 32, 3), COLOURS[names[k]], np.uint8) for k in labels])
    path = tmp_path / "d.npz"
    np.savez(path, images=images, labels=labels, label_names=np.array(names))
    result = _evaluate(unsorted_model, path)
    assert result.top1 == 1.0 and result.per_class["zebra"] == (2, 2)


def test_names_match_ignoring_case_and_unlabelled_data_passes() -> None:
    source = ArraySource(np.zeros((2, 4, 4, 3), np.uint8), [0, 1], ["Apple", "ZEBRA"], description="x")
    assert align_labels(source, UNSORTED, 3).remap(np.array([1, 0, -1])).tolist() == [0, 1, -1]
    flat = ArraySource(np.zeros((2, 4, 4, 3), np.uint8), None, (), description="y")
    assert align_labels(flat, UNSORTED, 3).remap(flat.labels).tolist() == [-1, -1]
    other = ArraySource(np.zeros((2, 4, 4, 3), np.uint8), [0, 1], ["apple", "plum"], description="z")
    assert align_labels(other, UNSORTED, 3, ignore_unknown=True).remap(np.array([0, 1])).tolist() == [
        1,
        UNKNOWN,
    ]
