"""The model zoo: names, specs, builders and the errors a user can make."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
import torch
from torch import nn

from edgeres.errors import UsageError
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from edgeres.models import ModelSpec, get_model, get_spec, list_models
from edgeres.models.registry import REGISTRY

IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
ALL_NAMES = {f"{kind}{d}" for kind in ("resnet", "plain") for d in IMAGENET_DEPTHS + CIFAR_DEPTHS}


def _depth_of(name: str) -> int:
    match = re.fullmatch(r"(resnet|plain)(\d+)", name)
    assert match, name
    return int(match.group(2))


def test_registered_names() -> None:
    assert set(list_models()) == ALL_NAMES
    assert len(list_models()) == len(ALL_NAMES)


def test_listing_order_is_resnets_then_plains_by_family_and_depth() -> None:
    names = list_models()
    assert names == list_models()
    specs = [get_spec(n) for n in names]
    keys = [(not s.residual, ("imagenet", "cifar").index(s.family), s.depth) for s in specs]
    assert keys == sorted(keys)
    assert names[:5] == [f"resnet{d}" for d in IMAGENET_DEPTHS]


def test_family_filter() -> None:
    assert list_models("cifar") == [n for n in list_models() if get_spec(n).family == "cifar"]
    assert set(list_models("imagenet")) | set(list_models("cifar")) == ALL_NAMES
    with pytest.raises(UsageError, match="imagenet"):
        list_models("mnist")


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_spec_is_coherent_with_the_name(name: str) -> None:
    spec = get_spec(name)
    assert isinstance(spec, ModelSpec)
    assert spec.name == name
    assert spec.depth == _depth_of(name)
    assert spec.residual == name.startswith("resnet")
    if spec.depth in CIFAR_DEPTHS:
        assert spec.family == "cifar"
        assert spec.default_num_classes == 10
        assert spec.preprocessing.input_size == (32, 32)
        assert (spec.preprocessing.mean, spec.preprocessing.std) == (CIFAR10_MEAN, CIFAR10_STD)
    else:
        assert spec.family == "imagenet"
        assert spec.default_num_classes == 1000
        assert spec.preprocessing.input_size == (224, 224)
        assert spec.preprocessing.resize_to == 256
        assert (spec.preprocessing.mean, spec.preprocessing.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert spec.description


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_depth_counts_the_weighted_layers(name: str) -> None:
    # The paper's "N-layer" counts the convs and the fc on the main path, not the projections.
    with torch.device("meta"):
        model = get_model(name)
    weighted = [
        n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear) and "downsample" not in n
    ]
    assert len(weighted) == get_spec(name).depth
    has_shortcut_modules = any("downsample" in n for n, _ in model.named_modules())
    assert has_shortcut_modules == get_spec(name).residual
    assert next(model.parameters()).is_meta


@pytest.mark.parametrize("name", sorted(ALL_NAMES))
def test_builders_take_typed_keyword_only_arguments(name: str) -> None:
    sig = inspect.signature(REGISTRY[name].builder)
    assert "num_classes" in sig.parameters
    for param in sig.parameters.values():
        assert param.kind is inspect.Parameter.KEYWORD_ONLY
        assert param.annotation is not inspect.Parameter.empty
        assert param.default is not inspect.Parameter.empty
    assert sig.parameters["num_classes"].default == REGISTRY[name].default_num_classes


def test_num_classes_sets_the_classifier() -> None:
    assert get_model("resnet20").fc.out_features == 10
    assert get_model("resnet20", num_classes=100).fc.out_features == 100
    with torch.device("meta"):
        assert get_model("resnet18").fc.out_features == 1000
        assert get_model("resnet50", num_classes=5).fc.weight.shape == (5, 2048)


def test_each_call_builds_fresh_weights() -> None:
    a, b = get_model("resnet20"), get_model("resnet20")
    assert a is not b
    assert not torch.equal(a.conv1.weight, b.conv1.weight)


@pytest.mark.parametrize("spelling", ["ResNet-18", "resnet_18", " RESNET18 "])
def test_common_spellings_resolve(spelling: str) -> None:
    assert get_spec(spelling).name == "resnet18"


@pytest.mark.parametrize(("typo", "suggestion"), [("resnt18", "resnet18"), ("resnet200", "resnet20")])
def test_unknown_name_suggests_a_close_match(typo: str, suggestion: str) -> None:
    with pytest.raises(UsageError) as info:
        get_model(typo)
    message = str(info.value)
    assert f"'{suggestion}'" in message
    assert "edgeres models" in message
    assert info.value.exit_code == 2


def test_unknown_name_without_a_close_match() -> None:
    with pytest.raises(UsageError, match="edgeres models") as info:
        get_spec("vgg16")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        ("resnet20", {"shortcut": "C"}, "shortcut"),
        ("resnet20", {"shortcut": "a"}, "shortcut"),
        ("resnet20", {"depth": 21}, "depth"),
        ("resnet18", {"shortcut": "B"}, "shortcut"),
        ("plain20", {"zero_init_residual": True}, "zero_init_residual"),
        ("resnet20", {"zero_init_residual": "yes"}, "zero_init_residual"),
        ("resnet20", {"num_classes": 0}, "positive"),
        ("resnet20", {"num_classes": "10"}, "num_classes"),
        ("resnet18", {"num_classes": True}, "num_classes"),
    ],
)
def test_bad_keywords_are_usage_errors(name: str, kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(UsageError, match=pattern) as info:
        get_model(name, **kwargs)
    assert info.value.exit_code == 2


def test_keywords_reach_the_builder() -> None:
    b = get_model("resnet56", shortcut="B", zero_init_residual=True)
    assert isinstance(b.layer2[0].downsample, nn.Sequential)
    assert all(
        torch.count_nonzero(block.bn2.weight) == 0 for stage in (b.layer1, b.layer3) for block in stage
    )


def test_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_spec("resnet18").depth = 19  # type: ignore[misc]
