"""The CIFAR-10 ResNets of He et al. 2015, section 4.2.

A 3x3 conv with 16 filters, then three stages of ``n`` basic blocks on 32x32,
16x16 and 8x8 maps with 16, 32 and 64 filters, global average pooling and a fully
connected layer: 6n + 2 weighted layers in all (20, 32, 44, 56, 110, 1202).

Shortcuts where the shape changes:

* option ``"A"`` (the paper's CIFAR choice): identity, subsampled with stride 2
  and zero-padded with the new channels; it has no parameters;
* option ``"B"``: a 1x1 projection conv with stride 2 and a BatchNorm.

``residual=False`` gives the plain networks: the same layers and no shortcuts.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeres.errors import UsageError
from edgeres.models.imagenet import BasicBlock, check_zero_init, conv1x1, conv3x3, init_weights

__all__ = ["STAGE_WIDTHS", "CifarBasicBlock", "CifarResNet", "Shortcut", "ZeroPadShortcut"]

Shortcut = Literal["A", "B"]
STAGE_WIDTHS: tuple[int, int, int] = (16, 32, 64)


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::stride, ::stride]`` with zero channels padded on both sides.

    The input channels land in the middle (``(out - in) // 2`` zero channels before
    them), the layout of the widely used CIFAR checkpoints. Plain slicing and
    ``F.pad`` export to ONNX as Slice and Pad.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise UsageError(f"a zero-padding shortcut cannot reduce channels ({in_planes} -> {out_planes})")
        self.stride = stride
        self.pad_before = (out_planes - in_planes) // 2
        self.pad_after = out_planes - in_planes - self.pad_before

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_before or self.pad_after:
            # (W left, W right, H top, H bottom, C front, C back)
            x = F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_before}, {self.pad_after})"


#: The CIFAR nets use the same basic block as ResNet-18/34; only their shortcuts differ.
CifarBasicBlock = BasicBlock


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs, with option A or B shortcuts, or none (plain)."""

    def __init__(
        self,
        depth: int,
        *,
        num_classes: int = 10,
        shortcut: Shortcut = "A",
        residual: bool = True,
        zero_init_residual: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise UsageError(f"a CIFAR ResNet has 6n+2 layers (20, 32, 44, 56, 110, ...), got depth {depth}")
        if shortcut not in get_args(Shortcut):
            raise UsageError(f"shortcut must be 'A' (zero-padding) or 'B' (projection), got {shortcut!r}")
        if num_classes < 1:
            raise UsageError(f"number of classes must be positive, got {num_classes}")
        check_zero_init(residual, zero_init_residual)
        self.depth = depth
        self.blocks_per_stage = (depth - 2) // 6
        self.shortcut = shortcut
        self.residual = residual
        self.inplanes = STAGE_WIDTHS[0]
        self.conv1 = conv3x3(in_channels, self.inplanes)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(STAGE_WIDTHS[0], stride=1)
        self.layer2 = self._make_layer(STAGE_WIDTHS[1], stride=2)
        self.layer3 = self._make_layer(STAGE_WIDTHS[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(STAGE_WIDTHS[2], num_classes)
        init_weights(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, CifarBasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_shortcut(self, planes: int, stride: int) -> nn.Module | None:
        if not self.residual or (stride == 1 and self.inplanes == planes):
            return None
        if self.shortcut == "A":
            return ZeroPadShortcut(self.inplanes, planes, stride)
        return nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = self._make_shortcut(planes, stride)
        layers: list[nn.Module] = [
            CifarBasicBlock(self.inplanes, planes, stride, downsample, residual=self.residual)
        ]
        self.inplanes = planes
        layers.extend(
            CifarBasicBlock(planes, planes, residual=self.residual) for _ in range(1, self.blocks_per_stage)
        )
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled, flattened features before the classifier: shape (N, 64)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.fc(self.forward_features(x))
        return logits
