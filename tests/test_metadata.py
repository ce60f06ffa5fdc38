from __future__ import annotations

import json

import pytest

from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import ModelMeta, Preprocessing, Provenance, parse_input_size, parse_triple


def test_round_trip_through_json_keeps_every_field() -> None:
    meta = ModelMeta(
        arch="resnet20",
        num_classes=3,
        class_names=("a", "b", "c"),
        arch_options={"shortcut": "B"},
        preprocessing=Preprocessing(input_size=(32, 48), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6)),
        provenance=Provenance(dataset="x", epochs=3, accuracy=0.5),
    )
    again = ModelMeta.from_json(meta.to_json())
    assert again == meta
    assert json.loads(meta.to_json())["preprocessing"]["input_size"] == [32, 48]


def test_class_names_must_match_the_number_of_outputs() -> None:
    with pytest.raises(UsageError, match="2 class names"):
        ModelMeta(arch=None, num_classes=3, class_names=("a", "b"))


def test_labels_fall_back_to_indices() -> None:
    assert ModelMeta(arch=None, num_classes=3).labels == ("0", "1", "2")


def test_resize_follows_the_imagenet_rule_and_leaves_small_inputs_alone() -> None:
    assert Preprocessing(input_size=(224, 224)).resize_to == 256
    assert Preprocessing(input_size=(32, 32)).resize_to == 32


@pytest.mark.parametrize("text, expected", [("224", (224, 224)), ("32x48", (32, 48)), ("32,48", (32, 48))])
def test_parse_input_size(text: str, expected: tuple[int, int]) -> None:
    assert parse_input_size(text) == expected


@pytest.mark.parametrize("text", ["abc", "1x2x3", "0", "-3"])
def test_parse_input_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(UsageError):
        Preprocessing(input_size=parse_input_size(text))


def test_parse_triple() -> None:
    assert parse_triple("0.5,0.25,1", "--mean") == (0.5, 0.25, 1.0)
    with pytest.raises(UsageError, match="--std"):
        parse_triple("1,2", "--std")


def test_malformed_metadata_is_a_user_error() -> None:
    with pytest.raises(EdgeresError, match="malformed"):
        ModelMeta.from_dict({"arch": "x"})
    with pytest.raises(EdgeresError, match="not valid JSON"):
        ModelMeta.from_json("{")


def test_declared_sizes_have_documented_limits() -> None:
    from edgeres.metadata import MAX_INPUT_SIDE, MAX_NUM_CLASSES

    Preprocessing(input_size=(MAX_INPUT_SIDE, MAX_INPUT_SIDE))
    ModelMeta(arch=None, num_classes=MAX_NUM_CLASSES)
    with pytest.raises(UsageError, match="larger than edgeres accepts"):
        Preprocessing(input_size=(MAX_INPUT_SIDE + 1, 8))
    with pytest.raises(UsageError, match="more than edgeres accepts"):
        ModelMeta(arch=None, num_classes=MAX_NUM_CLASSES + 1)
    with pytest.raises(UsageError, match="finite"):
        Preprocessing(std=(float("inf"), 1.0, 1.0))
    with pytest.raises(EdgeresError, match="malformed"):
        ModelMeta.from_dict([1, 2])  # type: ignore[arg-type]


def test_a_class_name_given_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="class name 'cat' is given twice"):
        ModelMeta(arch="resnet20", num_classes=3, class_names=("cat", "cat", "dog"))
