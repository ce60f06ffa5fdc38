"""ImageNet ResNets: torchvision's parameter layout, forward shapes, shortcuts, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgeres.errors import UsageError
from edgeres.models import count_parameters, get_model
from edgeres.models.imagenet import BasicBlock, Bottleneck, ResNet

Shape = tuple[int, ...]

STAGES = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet34": ("basic", [3, 4, 6, 3])}
STAGES |= {"resnet50": ("bottleneck", [3, 4, 6, 3]), "resnet101": ("bottleneck", [3, 4, 23, 3])}
STAGES |= {"resnet152": ("bottleneck", [3, 8, 36, 3])}

# Parameter counts published with torchvision's ImageNet weights (``weights.meta["num_params"]``).
TORCHVISION_NUM_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def _bn(prefix: str, channels: int) -> dict[str, Shape]:
    return {
        f"{prefix}.weight": (channels,),
        f"{prefix}.bias": (channels,),
        f"{prefix}.running_mean": (channels,),
        f"{prefix}.running_var": (channels,),
        f"{prefix}.num_batches_tracked": (),
    }


def torchvision_layout(kind: str, layers: list[int], num_classes: int = 1000) -> dict[str, Shape]:
    """torchvision's resnet.py state_dict, key -> shape, written out from its documented rules.

    Stem: conv1 7x7/2 with 64 filters and bn1. Stage s (64, 128, 256, 512 base
    planes) has layers[s] blocks; a basic block is conv1 3x3, bn1, conv2 3x3, bn2; a
    bottleneck is conv1 1x1, bn1, conv2 3x3, bn2, conv3 1x1 (4x planes), bn3. The
    first block of a stage has downsample.0 (1x1 conv) and downsample.1 (BN) when
    the stride or the channel count changes. Then fc.
    """
    expansion = 4 if kind == "bottleneck" else 1
    keys: dict[str, Shape] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True), start=1):
        out = planes * expansion
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            cin = inplanes if i == 0 else out
            if kind == "basic":
                keys[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
                keys |= _bn(f"{p}.bn1", planes)
                keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                keys |= _bn(f"{p}.bn2", planes)
            else:
                keys[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
                keys |= _bn(f"{p}.bn1", planes)
                keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                keys |= _bn(f"{p}.bn2", planes)
                keys[f"{p}.conv3.weight"] = (out, planes, 1, 1)
                keys |= _bn(f"{p}.bn3", out)
            if i == 0 and (stage > 1 or inplanes != out):
                keys[f"{p}.downsample.0.weight"] = (out, inplanes, 1, 1)
                keys |= _bn(f"{p}.downsample.1", out)
        inplanes = out
    keys["fc.weight"] = (num_classes, 512 * expansion)
    keys["fc.bias"] = (num_classes,)
    return keys


def _is_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


def random_state_dict(layout: dict[str, Shape]) -> dict[str, torch.Tensor]:
    """Random tensors of the given shapes (positive where BatchNorm needs it)."""
    g = torch.Generator().manual_seed(0)
    sd: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(12345)
        elif key.endswith(("running_var", "bn1.weight", "bn2.weight", "bn3.weight", "1.weight")):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) > 1:
            sd[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.1
    return sd


@pytest.mark.parametrize("name", list(STAGES))
def test_layout_rule_reproduces_torchvision_parameter_counts(name: str) -> None:
    # Checks the rule itself against torchvision's published numbers.
    layout = torchvision_layout(*STAGES[name])
    assert sum(math.prod(s) for k, s in layout.items() if not _is_buffer(k)) == TORCHVISION_NUM_PARAMS[name]


@pytest.mark.parametrize("name", list(STAGES))
def test_state_dict_keys_and_shapes_match_torchvision(name: str) -> None:
    with torch.device("meta"):
        model = get_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = torchvision_layout(*STAGES[name])
    assert set(ours) == set(expected)
    assert ours == expected
    assert list(ours) == list(expected)  # same order too, as torchvision registers them


@pytest.mark.parametrize(("name", "assign"), [("resnet18", False), ("resnet50", True)])
def test_torchvision_state_dict_loads_strict(name: str, assign: bool) -> None:
    # assign=True loads into a weightless meta model, as one does with large checkpoints.
    with torch.device("meta" if assign else "cpu"):
        model = get_model(name)
    sd = random_state_dict(torchvision_layout(*STAGES[name]))
    result = model.load_state_dict(sd, strict=True, assign=assign)
    assert not result.missing_keys and not result.unexpected_keys
    loaded = model.state_dict()
    for key, value in sd.items():
        assert torch.equal(loaded[key], value), key
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, 1000)  # random weights: only the shape is meaningful


def test_torchvision_state_dict_with_other_num_classes_loads() -> None:
    with torch.device("meta"):
        model = get_model("resnet18", num_classes=37)
    sd = random_state_dict(torchvision_layout("basic", [2, 2, 2, 2], num_classes=37))
    model.load_state_dict(sd, strict=True, assign=True)
    assert model.fc.out_features == 37
    assert torch.equal(model.fc.weight, sd["fc.weight"])


def test_missing_downsample_key_is_refused() -> None:
    # The check above can fail: a layout without layer2's projection does not load.
    with torch.device("meta"):
        model = get_model("resnet18")
    layout = torchvision_layout("basic", [2, 2, 2, 2])
    sd = {k: v for k, v in random_state_dict(layout).items() if not k.startswith("layer2.0.downsample")}
    with pytest.raises(RuntimeError, match=r"layer2\.0\.downsample"):
        model.load_state_dict(sd, strict=True, assign=True)


@pytest.mark.parametrize(
    ("name", "kwargs", "classes"),
    [("resnet18", {}, 1000), ("resnet34", {"num_classes": 7}, 7), ("plain18", {"num_classes": 3}, 3)],
)
def test_forward_shape_on_small_input(name: str, kwargs: dict[str, int], classes: int) -> None:
    model = get_model(name, **kwargs).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, classes)
    assert torch.isfinite(y).all()


def test_training_step_runs() -> None:
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=4)
    x, target = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
    loss = nn.functional.cross_entropy(model(x), target)
    loss.backward()
    assert model.conv1.weight.grad is not None and model.layer4[0].conv2.weight.grad is not None
    assert model.layer2[0].downsample[0].weight.grad is not None


def test_bottleneck_puts_the_stride_on_the_3x3_conv() -> None:
    with torch.device("meta"):
        model = get_model("resnet50")
    for stage in (model.layer2, model.layer3, model.layer4):
        first = stage[0]
        assert isinstance(first, Bottleneck)
        assert first.conv1.stride == (1, 1)
        assert first.conv2.stride == (2, 2)
        assert first.conv3.stride == (1, 1)
        assert first.downsample[0].stride == (2, 2)
    # layer1 keeps the resolution but widens 64 -> 256 channels: a stride-1 projection.
    assert model.layer1[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize(("plain", "resnet"), [("plain18", "resnet18"), ("plain50", "resnet50")])
def test_plain_nets_are_the_same_stacks_without_shortcuts(plain: str, resnet: str) -> None:
    with torch.device("meta"):
        p, r = get_model(plain), get_model(resnet)
    assert not [n for n, _ in p.named_modules() if "downsample" in n]
    assert all(
        b.downsample is None and not b.residual for b in p.modules() if isinstance(b, BasicBlock | Bottleneck)
    )
    plain_keys = {k: v.shape for k, v in p.state_dict().items()}
    resnet_keys = {k: v.shape for k, v in r.state_dict().items() if ".downsample." not in k}
    assert plain_keys == resnet_keys


def test_zero_init_residual_makes_each_block_start_as_identity() -> None:
    model = ResNet(BasicBlock, [2, 1, 1, 1], zero_init_residual=True).eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.layer1[0](x), torch.relu(x))
        block = model.layer2[0]
        assert torch.allclose(block(x), torch.relu(block.downsample(x)))
    default = ResNet(BasicBlock, [2, 1, 1, 1]).eval()
    with torch.no_grad():
        assert not torch.allclose(default.layer1[0](x), torch.relu(x))


def test_zero_init_residual_on_bottleneck() -> None:
    block_model = ResNet(Bottleneck, [1, 1, 1, 1], zero_init_residual=True).eval()
    block = block_model.layer1[0]
    assert torch.count_nonzero(block.bn3.weight) == 0
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(block.downsample(x)))


def test_plain_block_adds_nothing() -> None:
    block = BasicBlock(8, 8, residual=False).eval()
    nn.init.zeros_(block.bn2.weight)
    with torch.no_grad():
        assert torch.count_nonzero(block(torch.randn(1, 8, 4, 4))) == 0


def test_zero_init_residual_refused_for_plain_nets() -> None:
    with pytest.raises(UsageError, match="plain"):
        ResNet(BasicBlock, [2, 2, 2, 2], residual=False, zero_init_residual=True)


def test_weight_init_is_kaiming_fan_out_and_bn_unit() -> None:
    model = get_model("resnet18")
    conv = model.layer4[1].conv2  # 512 x 512 x 3 x 3: 2.4M samples
    expected_std = math.sqrt(2.0 / (conv.out_channels * 9))
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.02)
    assert abs(conv.weight.mean().item()) < expected_std / 100
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_bad_stage_list_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        ResNet(BasicBlock, [2, 2, 2])
    with pytest.raises(UsageError):
        ResNet(BasicBlock, [2, 0, 2, 2])


def test_grayscale_stem() -> None:
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=5, in_channels=1).eval()
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 5)
    assert count_parameters(model) > 0
