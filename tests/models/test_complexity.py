"""Parameter and multiply-add counts against the paper's figures and hand-computed rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeres.errors import UsageError
from edgeres.models import count_macs, count_parameters, describe, get_model
from edgeres.models.cifar import CifarResNet

# He et al. 2015, section 4.2 and table 6: parameters of the CIFAR-10 ResNets (option A).
PAPER_CIFAR_PARAMS_M = {
    "resnet20": 0.27,
    "resnet32": 0.46,
    "resnet44": 0.66,
    "resnet56": 0.85,
    "resnet110": 1.7,
}


@pytest.mark.parametrize(("name", "millions"), PAPER_CIFAR_PARAMS_M.items())
def test_cifar_parameter_counts_match_the_paper(name: str, millions: float) -> None:
    params = describe(name).params
    digits = 1 if millions >= 1 else 2
    assert round(params / 1e6, digits) == millions
    assert params == pytest.approx(millions * 1e6, rel=0.02)


def test_resnet1202_has_19_4_million_parameters() -> None:
    # Section 4.2, "Exploring over 1000 layers": a 19.4M-parameter model.
    summary = describe("resnet1202")
    assert round(summary.params / 1e6, 1) == 19.4
    assert summary.depth == 1202


@pytest.mark.parametrize(
    ("name", "params_m", "gmacs"),
    [
        ("resnet18", 11.69, 1.82),  # torchvision's table: 11.69M, 1.81 GFLOPS; paper table 1: 1.8e9
        ("resnet34", 21.80, 3.6),  # paper table 1: 3.6e9
        ("resnet50", 25.6, 4.1),  # torchvision's v1.5 (the paper's v1 has 3.8e9)
        ("resnet152", 60.2, 11.3),  # paper table 1: 11.3e9
    ],
)
def test_imagenet_figures(name: str, params_m: float, gmacs: float) -> None:
    summary = describe(name)
    assert summary.input_size == (224, 224)
    assert summary.params / 1e6 == pytest.approx(params_m, rel=0.005)
    assert summary.macs / 1e9 == pytest.approx(gmacs, rel=0.03)


def test_resnet152_is_cheaper_than_vgg19() -> None:
    # Section 4.1: 11.3 billion FLOPs, "lower complexity than VGG-16/19 nets (15.3/19.6 billion FLOPs)".
    macs = describe("resnet152").macs
    assert macs < 19.6e9
    assert macs < 15.3e9


def test_plain_nets_cost_the_same_minus_projections() -> None:
    assert describe("plain34").params < describe("resnet34").params
    assert describe("plain20").params == describe("resnet20").params  # option A is free
    assert describe("plain20").macs == describe("resnet20").macs


def test_macs_of_a_hand_built_net() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1),  # 17x17 -> 9x9
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 4, kernel_size=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    )
    expected = 8 * 3 * 3 * 3 * 9 * 9 + 4 * 8 * 9 * 9 + 4 * 5
    assert count_macs(net, (17, 17)) == expected
    grey = nn.Sequential(nn.Conv2d(1, 2, kernel_size=3, padding=1))
    assert count_macs(grey, (5, 7), in_channels=1) == 2 * 1 * 9 * 5 * 7


def expected_cifar_macs(n: int, *, projection: bool, size: int = 32, num_classes: int = 10) -> int:
    """Multiply-adds of a 6n+2 CIFAR net, conv by conv: Cout * Cin * k * k * Hout * Wout."""
    total = 16 * 3 * 9 * size * size
    cin = 16
    for stage, width in enumerate((16, 32, 64)):
        side = size // (2**stage)
        for _ in range(n):
            total += width * cin * 9 * side * side + width * width * 9 * side * side
            cin = width
        if projection and stage > 0:
            total += width * (width // 2) * side * side
    return total + 64 * num_classes


@pytest.mark.parametrize(("depth", "shortcut"), [(20, "A"), (20, "B"), (56, "A"), (110, "B")])
def test_cifar_macs_follow_the_architecture(depth: int, shortcut: str) -> None:
    with torch.device("meta"):
        model = CifarResNet(depth, shortcut=shortcut)  # type: ignore[arg-type]
    n = (depth - 2) // 6
    assert count_macs(model, (32, 32)) == expected_cifar_macs(n, projection=shortcut == "B")


def test_count_macs_leaves_the_model_alone() -> None:
    model = get_model("resnet20")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    kinds = [type(m) for m in model.modules()]
    count_macs(model, (32, 32))
    after = model.state_dict()
    assert all(v.device.type == "cpu" for v in after.values())
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == modes
    assert [type(m) for m in model.modules()] == kinds
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # still runs, on CPU

    model.eval()
    count_macs(model, (32, 32))
    assert not any(m.training for m in model.modules())


def test_count_macs_at_another_input_size() -> None:
    with torch.device("meta"):
        model = get_model("resnet20")
    assert count_macs(model, (64, 64)) == expected_cifar_macs(3, projection=False, size=64)


@pytest.mark.parametrize("size", [(0, 32), (32, -1)])
def test_bad_input_size(size: tuple[int, int]) -> None:
    with pytest.raises(UsageError):
        count_macs(get_model("resnet20"), size)


def test_count_parameters() -> None:
    model = get_model("resnet20")
    with torch.device("meta"):
        meta = get_model("resnet20")
    assert count_parameters(model) == count_parameters(meta) == sum(p.numel() for p in model.parameters())
    model.fc.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - (64 * 10 + 10)


def test_describe_matches_a_real_model() -> None:
    summary = describe("resnet20")
    model = get_model("resnet20")
    assert (summary.name, summary.family, summary.depth, summary.residual) == ("resnet20", "cifar", 20, True)
    assert summary.input_size == (32, 32)
    assert summary.params == count_parameters(model)
    assert summary.macs == count_macs(model, (32, 32))
    assert describe("plain56").residual is False


def test_describe_passes_options() -> None:
    assert describe("resnet20", shortcut="B").params > describe("resnet20").params
    assert describe("resnet18", input_size=(112, 112)).input_size == (112, 112)
    assert describe("resnet18", input_size=(112, 112)).macs < describe("resnet18").macs / 3
    assert describe("ResNet-20", num_classes=100).params == describe("resnet20").params + 90 * 65
    with pytest.raises(UsageError, match="edgeres models"):
        describe("resnet19")
