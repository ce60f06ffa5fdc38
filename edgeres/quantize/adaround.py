"""Learned weight rounding (AdaRound): choose, per weight, whether it rounds up or down.

Round-to-nearest is optimal for each weight alone, not for the layer's output. AdaRound (Nagel
et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization") learns, layer by
layer, a continuous variable ``V`` per weight; the soft weight is
``s * clip(floor(w / s) + h(V), qmin, qmax)`` with ``h(V) = clip(sigmoid(V) * 1.2 - 0.1, 0, 1)``,
and Adam minimizes the layer's output error against FP32 (after its ReLU where one follows)
plus a term ``lambda * sum(1 - |2h - 1|^beta)`` that pushes every ``h`` to 0 or 1 as ``beta``
anneals from 20 to 2 after a warm-up. Scales stay as the layout set them (per channel,
``absmax / qmax``); the weights at a channel's ``absmax`` keep their integer, so re-quantizing
the written float weights gives the same scales and the learned integers.

The layer's input comes from the Q/DQ model with every earlier layer already rounded (errors do
not compound); see :mod:`edgeres.quantize.adaround_data` for how it is sampled.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from edgeres.errors import UsageError
from edgeres.quantize.adaround_data import RoundingLayer

__all__ = [
    "ROUNDINGS",
    "LayerRounding",
    "Rounding",
    "RoundingSettings",
    "bits_of",
    "integers_from_bits",
    "learn_layer",
]

#: How weights round to integers: the owner of the names ``--rounding`` and ``[quantize] rounding`` take.
ROUNDINGS: tuple[str, ...] = ("nearest", "adaround")
Rounding = Literal["nearest", "adaround"]

_ZETA, _GAMMA = 1.1, -0.1  # the stretch of h(V) (the paper's values)


@dataclass(frozen=True)
class RoundingSettings:
    """How learned rounding optimizes each layer (the defaults suit ResNets)."""

    #: Adam steps per layer.
    iterations: int = 1000
    #: Output positions (patches) per step; fewer for wide layers, so a step costs about the same.
    batch: int = 1024
    #: Weight of the term that pushes each rounding to up or down.
    reg_weight: float = 0.01
    beta_start: float = 20.0
    beta_end: float = 2.0
    #: Share of the steps with the reconstruction loss alone.
    warmup: float = 0.2
    lr: float = 1e-2
    #: Bound on the input patches kept per layer (MB of float32): what bounds memory.
    memory_mb: int = 256
    #: Fewer calibration images than this are refused.
    min_images: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("iterations", "batch", "memory_mb", "min_images"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UsageError(f"learned rounding: {name} must be a whole number of at least 1, got {v!r}")
        for name in ("reg_weight", "beta_start", "beta_end", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise UsageError(f"learned rounding: {name} must be a positive number, got {v!r}")
        if not 0 <= self.warmup < 1:
            raise UsageError(f"learned rounding: warmup must be in [0, 1), got {self.warmup!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        """What the learned integers depend on, for the calibration cache."""
        d = self.to_dict()
        return ",".join(f"{k}={d[k]}" for k in sorted(d) if k != "min_images")


@dataclass(frozen=True)
class LayerRounding:
    """What learning one layer's rounding did."""

    node: str
    weights: int
    #: Share of the weights rounded the other way than round-to-nearest.
    flipped: float
    #: Mean squared output error per position (summed over channels), nearest and learned, on the
    #: sampled positions; ``None`` when the integers came from a calibration cache.
    error_nearest: float | None
    error_learned: float | None
    seconds: float
    patches: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _h(v: Any) -> Any:
    import torch

    return torch.clamp(torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0.0, 1.0)


def _forward(layer: RoundingLayer, x: Any, w: Any, bias: Any) -> Any:
    """The layer on patches ``x`` (n, inputs) with weights ``w`` (channels, inputs per group)."""
    g = layer.groups
    if g == 1:
        y = x @ w.T
    else:
        n = x.shape[0]
        y = (x.reshape(n, g, 1, -1) * w.reshape(1, g, w.shape[0] // g, -1)).sum(-1).reshape(n, -1)
    if layer.op == "Gemm":
        y = y * float(layer.attrs.get("alpha", 1.0))
    return y + bias


def _error(layer: RoundingLayer, x: Any, y: Any, w: Any, bias: Any) -> float:
    import torch

    with torch.no_grad():
        total, n = 0.0, 0
        for s in range(0, x.shape[0], 8192):
            out = _forward(layer, x[s : s + 8192], w, bias)
            if layer.relu:
                out = torch.relu(out)
            total += float(((out - y[s : s + 8192]) ** 2).sum())
            n += out.shape[0]
    return total / max(1, n)


def learn_layer(
    layer: RoundingLayer, x: Any, y: Any, settings: RoundingSettings, layer_index: int
) -> tuple[np.ndarray, LayerRounding]:
    """The learned integers of ``layer`` (channels, inputs) from patches ``x`` and FP32 outputs ``y``."""
    import torch

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(settings.seed * 100_003 + layer_index)
    scale = torch.from_numpy(layer.scale.astype(np.float32))[:, None]
    w = torch.from_numpy(layer.w.astype(np.float32))
    bias = torch.from_numpy(layer.bias.astype(np.float32))
    ratio = w / scale
    floor = torch.floor(ratio)
    nearest = torch.from_numpy(layer.nearest.astype(np.float32))
    # the weights at a channel's absmax set its scale: they keep their integer
    fixed = torch.from_numpy(layer.fixed)
    rest = torch.clamp(ratio - floor, 1e-4, 1 - 1e-4)
    v = (-torch.log((_ZETA - _GAMMA) / (rest - _GAMMA) - 1)).clone().requires_grad_(True)
    target = torch.relu(y) if layer.relu else y
    n = x.shape[0]
    inputs = x.shape[1]
    batch = max(64, min(settings.batch, n, int(settings.batch * 64 * 576 / max(1, inputs * w.shape[0]))))
    opt = torch.optim.Adam([v], lr=settings.lr)
    warm = int(settings.warmup * settings.iterations)
    free = ~fixed
    for step in range(settings.iterations):
        idx = torch.randint(0, n, (batch,), generator=gen)
        h = _h(v)
        q = torch.where(fixed, nearest, torch.clamp(floor + h, layer.qmin, layer.qmax))
        out = _forward(layer, x[idx], q * scale, bias)
        if layer.relu:
            out = torch.relu(out)
        loss = ((out - target[idx]) ** 2).sum(1).mean()
        if step >= warm:
            t = (step - warm) / max(1, settings.iterations - warm)
            beta = settings.beta_end + 0.5 * (settings.beta_start - settings.beta_end) * (
                1 + math.cos(math.pi * t)
            )
            loss = loss + settings.reg_weight * (1 - (2 * h[free] - 1).abs().pow(beta)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        up = (v >= 0).float()
        q = torch.where(fixed, nearest, torch.clamp(floor + up, layer.qmin, layer.qmax))
        before = _error(layer, x, target, nearest * scale, bias)
        after = _error(layer, x, target, q * scale, bias)
        if after > before:  # never worse than nearest on the layer's own samples
            q, after = nearest, before
    ints = q.numpy().astype(np.int32)
    record = LayerRounding(
        node=layer.node,
        weights=int(ints.size),
        flipped=float((ints != layer.nearest).mean()),
        error_nearest=before,
        error_learned=after,
        seconds=time.perf_counter() - start,
        patches=int(n),
    )
    return ints, record


def integers_from_bits(layer: RoundingLayer, up: np.ndarray) -> np.ndarray:
    """The integers that round-up bits ``up`` (one per weight, as the cache keeps them) stand for."""
    ratio = layer.w.astype(np.float32) / layer.scale[:, None]
    floor = np.floor(ratio)
    q = np.clip(floor + up.reshape(floor.shape), layer.qmin, layer.qmax).astype(np.int32)
    return np.where(layer.fixed, layer.nearest, q)


def bits_of(layer: RoundingLayer, q: np.ndarray) -> np.ndarray:
    """Round-up bits of the integers ``q``: ``q - floor(w / s)``, 0 or 1."""
    ratio = layer.w.astype(np.float32) / layer.scale[:, None]
    up = q - np.floor(ratio)
    return np.clip(up, 0, 1).astype(np.uint8)
