"""CIFAR ResNets (section 4.2): 6n+2 layers, option A / B shortcuts, plain nets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeres.errors import UsageError
from edgeres.models import count_parameters, get_model
from edgeres.models.cifar import CifarBasicBlock, CifarResNet, ZeroPadShortcut


def expected_params(n: int, *, projection: bool, num_classes: int = 10) -> int:
    """Parameters of a 6n+2 CIFAR net, from the paper's description of it.

    3x3 stem conv 3->16 + BN; per stage (16, 32, 64 filters) n blocks of two 3x3
    convs + two BNs (weight and bias each); option B adds a 1x1 conv + BN where
    the width doubles (16->32, 32->64); fc 64 -> classes with bias.
    """
    total = 3 * 16 * 9 + 2 * 16
    cin = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += cin * width * 9 + width * width * 9 + 4 * width
            cin = width
    if projection:
        total += (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize("n", [1, 3, 9])
def test_parameter_counts_follow_the_architecture(n: int) -> None:
    depth = 6 * n + 2
    assert count_parameters(CifarResNet(depth)) == expected_params(n, projection=False)
    assert count_parameters(CifarResNet(depth, shortcut="B")) == expected_params(n, projection=True)
    assert count_parameters(CifarResNet(depth, residual=False)) == expected_params(n, projection=False)
    assert count_parameters(CifarResNet(depth, num_classes=100)) == expected_params(
        n, projection=False, num_classes=100
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "classes"),
    [
        ("resnet20", {}, 10),
        ("plain20", {}, 10),
        ("resnet20", {"shortcut": "B"}, 10),
        ("resnet32", {"num_classes": 100}, 100),
    ],
)
def test_forward_shape(name: str, kwargs: dict[str, object], classes: int) -> None:
    model = get_model(name, **kwargs).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, classes)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_odd_input_sizes_work(shortcut: str) -> None:
    # Subsampling with ::2 and a stride-2 conv both give ceil(n/2) pixels.
    model = get_model("resnet20", shortcut=shortcut).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 31)).shape == (1, 10)


def test_stages_run_on_32_16_8_maps_with_16_32_64_filters() -> None:
    model = get_model("resnet20").eval()
    shapes: list[tuple[int, ...]] = []
    for stage in (model.layer1, model.layer2, model.layer3):
        assert len(stage) == 3
        stage.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert shapes == [(1, 16, 32, 32), (1, 32, 16, 16), (1, 64, 8, 8)]


def test_option_a_shortcuts_have_no_parameters() -> None:
    a, b = get_model("resnet20"), get_model("resnet20", shortcut="B")
    a_shortcuts = [m for n, m in a.named_modules() if n.endswith("downsample")]
    b_shortcuts = [m for n, m in b.named_modules() if n.endswith("downsample")]
    assert len(a_shortcuts) == len(b_shortcuts) == 2  # where 16->32 and 32->64
    assert all(isinstance(m, ZeroPadShortcut) for m in a_shortcuts)
    assert sum(count_parameters(m) for m in a_shortcuts) == 0
    assert all(isinstance(m, nn.Sequential) and isinstance(m[0], nn.Conv2d) for m in b_shortcuts)
    projection = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert count_parameters(b) - count_parameters(a) == projection


def test_option_a_subsamples_and_zero_pads() -> None:
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, :8]) == 0 and torch.count_nonzero(y[:, 24:]) == 0
    assert torch.equal(ZeroPadShortcut(16, 16, stride=1)(x), x)


def test_option_a_cannot_reduce_channels() -> None:
    with pytest.raises(UsageError):
        ZeroPadShortcut(32, 16, stride=1)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_blocks_add_their_shortcut(shortcut: str) -> None:
    # With the residual branch zeroed, a block is relu(shortcut(x)).
    model = CifarResNet(20, shortcut=shortcut, zero_init_residual=True).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.layer1[0](x), torch.relu(x))
        block = model.layer2[0]
        if shortcut == "A":
            expected = torch.relu(F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8)))
        else:
            expected = torch.relu(block.downsample(x))
        assert torch.allclose(block(x), expected)


def test_plain_nets_have_no_shortcuts() -> None:
    plain, resnet = get_model("plain20"), get_model("resnet20")
    assert not [n for n, _ in plain.named_modules() if "downsample" in n]
    blocks = [m for m in plain.modules() if isinstance(m, CifarBasicBlock)]
    assert len(blocks) == 9
    assert all(b.downsample is None and not b.residual for b in blocks)
    # Option A adds no parameters, so the plain net has exactly ResNet-20's weights.
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in resnet.state_dict().items()
    }
    # ... and with the same weights it computes something else: no identity is added.
    plain.load_state_dict(resnet.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(plain.eval()(x), resnet.eval()(x))


@pytest.mark.parametrize("depth", [0, 8 - 6, 21, 19])
def test_depth_must_be_6n_plus_2(depth: int) -> None:
    with pytest.raises(UsageError, match="6n"):
        CifarResNet(depth)


def test_bad_shortcut_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="shortcut"):
        CifarResNet(20, shortcut="C")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # raised inside torch.onnx, not by our code
def test_option_a_exports_to_onnx() -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    shortcut = ZeroPadShortcut(4, 8, stride=2).eval()
    x = torch.randn(1, 4, 6, 6)
    program = torch.onnx.export(shortcut, (x,), dynamo=True, verbose=False)
    assert program is not None
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert ops <= {"Slice", "Pad", "Constant", "Reshape", "Concat", "Identity"}, ops
    session = ort.InferenceSession(
        program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert torch.equal(torch.from_numpy(y), shortcut(x))
