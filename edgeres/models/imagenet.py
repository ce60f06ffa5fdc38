"""The ImageNet ResNets of He et al. 2015, "Deep Residual Learning for Image Recognition".

The layout follows torchvision's ``models/resnet.py`` (ResNet v1.5: the stride of a
downsampling bottleneck sits on its 3x3 conv) and the parameter names are identical,
so a torchvision ``state_dict`` loads with ``strict=True``.

``residual=False`` gives the paper's plain networks: the same stacks of layers with
no shortcut connections at all (and therefore no ``downsample`` projections).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from edgeres.errors import UsageError

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "check_zero_init", "conv1x1", "conv3x3", "init_weights"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). The first conv carries the stride."""

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out = out + identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (ResNet-50/101/152), stride on the 3x3 conv (v1.5)."""

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out = out + identity
        out = self.relu(out)
        return out


def init_weights(model: nn.Module) -> None:
    """He init (kaiming normal, fan_out) for convs, BN weight 1 and bias 0, as torchvision."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.BatchNorm2d | nn.GroupNorm) and m.weight.is_meta:
            continue  # built on the meta device (to count, not to run): there are no values to set
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def check_zero_init(residual: bool, zero_init_residual: bool) -> None:
    """Refuse ``zero_init_residual`` on a plain net: every block would output zeros."""
    if zero_init_residual and not residual:
        raise UsageError("zero_init_residual needs shortcut connections; plain networks have none")


class ResNet(nn.Module):
    """ResNet for 224x224 ImageNet-style inputs (any size of at least 32 works).

    ``layers`` gives the number of blocks in each of the four stages (64, 128, 256
    and 512 base channels; stages 2-4 halve the resolution).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        *,
        num_classes: int = 1000,
        residual: bool = True,
        zero_init_residual: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise UsageError(f"a ResNet needs four stages of at least one block each, got {list(layers)}")
        if num_classes < 1:
            raise UsageError(f"number of classes must be positive, got {num_classes}")
        check_zero_init(residual, zero_init_residual)
        self.block = block
        self.residual = residual
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self)
        if zero_init_residual:
            # Each residual branch starts at zero, so each block starts as the identity
            # (Goyal et al. 2017); torchvision's option of the same name.
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        block = self.block
        out_planes = planes * block.expansion
        downsample: nn.Module | None = None
        if self.residual and (stride != 1 or self.inplanes != out_planes):
            # Projection shortcut (option B of the paper) where the shape changes.
            downsample = nn.Sequential(conv1x1(self.inplanes, out_planes, stride), nn.BatchNorm2d(out_planes))
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample, residual=self.residual)]
        self.inplanes = out_planes
        layers.extend(block(self.inplanes, planes, residual=self.residual) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled, flattened features before the classifier: shape (N, 512 * expansion)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.fc(self.forward_features(x))
        return logits
