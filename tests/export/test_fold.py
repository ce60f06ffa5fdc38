"""BatchNorm folding: no BatchNorm left, same outputs, shortcuts intact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeres.export.fold import count_batchnorm, fold_batchnorm, randomize_batchnorm
from edgeres.models import get_model


def _check_folded(model: nn.Module, size: int, atol: float = 1e-4) -> nn.Module:
    torch.manual_seed(0)
    randomize_batchnorm(model, seed=1)
    model.eval()
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        expected = model(x)
    folded = fold_batchnorm(model)
    assert count_batchnorm(folded) == 0
    with torch.no_grad():
        got = folded(x)
    assert torch.allclose(got, expected, atol=atol, rtol=0), (got - expected).abs().max()
    return folded


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_cifar_resnet_folds_completely(shortcut: str) -> None:
    model = get_model("resnet20", num_classes=10, shortcut=shortcut)
    assert count_batchnorm(model) == (19 if shortcut == "A" else 21)
    folded = _check_folded(model, 32)
    if shortcut == "A":  # fx inlines the parameter-free zero-padding shortcut: slice and pad remain
        assert isinstance(folded, torch.fx.GraphModule)
        assert "torch.nn.functional.pad" in folded.code


def test_imagenet_resnet_folds_completely() -> None:
    _check_folded(get_model("resnet18", num_classes=10), 64)


def test_original_model_is_untouched() -> None:
    model = get_model("resnet20", num_classes=10)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fold_batchnorm(model)
    assert model.training
    assert count_batchnorm(model) == 19
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


class _SharedConv(nn.Module):
    """conv output feeds BN and a second path: folding would change the second path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.fc((self.bn(y) + y).mean((2, 3)))


def test_conv_with_second_user_is_not_folded() -> None:
    model = _SharedConv()
    randomize_batchnorm(model)
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    folded = fold_batchnorm(model)
    assert count_batchnorm(folded) == 1
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)


class _Untraceable(nn.Module):
    """Data-dependent Python control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x).mean((2, 3))
        if float(y.sum()) > 1e9:
            y = y * 0
        return self.fc(y)


def test_untraceable_model_folds_sequential_pairs(caplog: pytest.LogCaptureFixture) -> None:
    folded = _check_folded(_Untraceable(), 8, atol=1e-5)
    assert isinstance(folded, _Untraceable)
    assert "cannot trace" in caplog.text
