"""Fold BatchNorm into the convolution before it, for inference.

In eval mode ``bn(conv(x))`` is an affine function of ``conv(x)`` per channel, so
it is exactly a convolution with rescaled weights and a new bias. Folding removes
every BatchNormalization node from the exported graph, which TensorRT's INT8
calibration and fusions expect.

The model is traced with ``torch.fx``, so any ``conv -> bn`` edge is found
wherever the modules live (``conv1``/``bn1`` attributes, Sequential pairs,
projection shortcuts) and parameter-free code such as the CIFAR option-A
zero-padding shortcut is kept as it is. A model fx cannot trace (data-dependent
Python control flow) falls back to folding adjacent pairs inside ``nn.Sequential``.
"""

from __future__ import annotations

import copy
import itertools
import logging
from typing import cast

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils.fusion import fuse_conv_bn_eval

from edgeres.errors import first_line

__all__ = ["count_batchnorm", "fold_batchnorm"]

log = logging.getLogger(__name__)

_PAIRS: tuple[tuple[type[nn.Module], type[nn.Module]], ...] = (
    (nn.Conv1d, nn.BatchNorm1d),
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv3d, nn.BatchNorm3d),
)


def count_batchnorm(model: nn.Module) -> int:
    """How many BatchNorm modules ``model`` holds."""
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every foldable conv->BN pair folded.

    The input model is not changed. Returns an ``fx.GraphModule`` when tracing
    works, otherwise the copied module with Sequential pairs folded.
    """
    work = copy.deepcopy(model).eval()
    try:
        traced = fx.symbolic_trace(work)
    except Exception as exc:  # fx raises TraceError, TypeError, ... for untraceable Python
        folded = _fold_sequential(work)
        log.warning(
            "torch.fx cannot trace %s (%s); folded %d BatchNorm layers inside Sequential containers only",
            type(model).__name__,
            first_line(exc, limit=None),
            folded,
        )
        return work
    folded = _fold_graph(traced)
    log.debug("folded %d BatchNorm layers into convolutions", folded)
    return traced


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    pair_ok = any(type(conv) is c and isinstance(bn, b) for c, b in _PAIRS)
    return pair_ok and isinstance(bn, _BatchNorm) and bn.track_running_stats and bn.running_mean is not None


def _fold_graph(gm: fx.GraphModule) -> int:
    modules = dict(gm.named_modules())
    graph = gm.graph
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    folded = 0
    for node in list(graph.nodes):
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue  # the conv output is also used elsewhere: folding would change that use
        if calls[str(src.target)] != 1 or calls[str(node.target)] != 1:
            continue  # a module called twice (shared weights) cannot be folded for one call only
        conv, bn = modules.get(str(src.target)), modules.get(str(node.target))
        if conv is None or bn is None or not _foldable(conv, bn):
            continue
        fused = fuse_conv_bn_eval(cast(_ConvNd, conv), cast(_BatchNorm, bn))
        _set_submodule(gm, str(src.target), fused)
        modules[str(src.target)] = fused
        node.replace_all_uses_with(src)
        graph.erase_node(node)
        folded += 1
    if folded:
        graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return folded


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, name, module)


def _fold_sequential(model: nn.Module) -> int:
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        keys = list(seq._modules)
        for a, b in itertools.pairwise(keys):
            conv, bn = seq._modules[a], seq._modules[b]
            if conv is not None and bn is not None and _foldable(conv, bn):
                seq._modules[a] = fuse_conv_bn_eval(cast(_ConvNd, conv), cast(_BatchNorm, bn))
                seq._modules[b] = nn.Identity()
                folded += 1
    return folded


@torch.no_grad()
def randomize_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters (for tests and checks)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm) and m.running_mean is not None and m.running_var is not None:
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            if m.affine:
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
