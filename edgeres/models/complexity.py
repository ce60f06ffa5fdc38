"""Parameter and multiply-add counts, measured from the model itself.

MACs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on a copy of
the model on the ``meta`` device, so no memory is allocated and no arithmetic is
done: ResNet-152 at 224x224 or ResNet-1202 cost a fraction of a second. Only
convolutions and matrix products count (the convention of the paper and of
torchvision's tables); BatchNorm, ReLU, pooling and additions do not. One
multiply-add is two FLOPs.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgeres.errors import UsageError
from edgeres.models.registry import get_model, get_spec

__all__ = ["ModelSummary", "count_macs", "count_parameters", "describe", "meta_copy"]


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter values (shared parameters once; buffers such as BN statistics not)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def meta_copy(model: nn.Module) -> nn.Module:
    """An independent copy of ``model`` whose parameters and buffers live on ``meta``.

    The weights are never copied: the deep copy is seeded with empty meta tensors,
    so this is cheap for any model on any device, and ``model`` is left untouched.
    """
    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = (
            nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
        )
    return copy.deepcopy(model, memo)


def count_macs(model: nn.Module, input_size: tuple[int, int], in_channels: int = 3) -> int:
    """Multiply-adds of one forward pass of one image of ``in_channels`` x H x W, in eval mode.

    ``model`` is not touched: the count runs on a weightless copy on the meta device.
    """
    return _count_macs_destructively(meta_copy(model), input_size, in_channels)


def _count_macs_destructively(model: nn.Module, input_size: tuple[int, int], in_channels: int) -> int:
    """Count on ``model`` itself (on meta), which is left in eval mode and without its BatchNorms."""
    h, w = input_size
    if h <= 0 or w <= 0 or in_channels <= 0:
        raise UsageError(f"input must have a positive size, got {in_channels}x{h}x{w}")
    shadow = _without_batchnorm(model).eval()
    x = torch.empty(1, in_channels, h, w, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        shadow(x)
    return int(counter.get_total_flops()) // 2


def _without_batchnorm(model: nn.Module) -> nn.Module:
    """Swap BatchNorm layers for identities, in place: they count no MACs and keep shapes.

    On ``meta`` tensors FlopCounterMode runs BatchNorm through its Python decomposition,
    which would be most of the counting time (seconds for ResNet-1202).
    """
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, child_name, nn.Identity())
    if isinstance(model, nn.modules.batchnorm._BatchNorm):
        return nn.Identity()
    return model


@dataclass(frozen=True)
class ModelSummary:
    """Size and cost of a registered model at its default input size."""

    name: str
    family: str
    depth: int
    residual: bool
    params: int
    macs: int
    input_size: tuple[int, int]


def describe(name: str, *, input_size: tuple[int, int] | None = None, **kwargs: Any) -> ModelSummary:
    """Build ``name`` on the meta device (no weights allocated) and count its parameters and MACs.

    ``input_size`` defaults to the family's (224x224 or 32x32); other keywords go to
    :func:`get_model`, e.g. ``shortcut="B"``.
    """
    spec = get_spec(name)
    size = spec.preprocessing.input_size if input_size is None else input_size
    with torch.device("meta"):
        model = get_model(spec.name, **kwargs)
    params = count_parameters(model)
    return ModelSummary(
        name=spec.name,
        family=spec.family,
        depth=spec.depth,
        residual=spec.residual,
        params=params,
        macs=_count_macs_destructively(model, size, 3),  # the model is ours and thrown away
        input_size=size,
    )
