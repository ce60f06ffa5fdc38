"""The paper's CIFAR augmentation as batched tensor ops, and the normalization that follows.

Section 4.2 of He et al. 2015: "4 pixels are padded on each side, and a 32x32 crop is
randomly sampled from the padded image or its horizontal flip". Here that is one gather over
the whole uint8 batch (no per-image Python loop): crop offsets and flips are drawn from a
CPU :class:`torch.Generator`, so a batch's augmentation depends only on that generator's
state, on any device. Padding is black (zero pixels), as torchvision's ``RandomCrop(32, 4)``
before ``ToTensor``; other input sizes pad by 1/8 of their side.

Normalization computes ``(x / 255 - mean) / std`` in float32, the same operations as
:func:`edgeres.data.preprocess_array`, so validation sees exactly what evaluation will.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, PUBLISHED_NORMALIZATIONS
from edgeres.train.settings import CIFAR10_CLASSES

__all__ = ["Augment", "channel_stats", "input_stats", "normalize", "random_crop_flip"]


def random_crop_flip(
    images: torch.Tensor, generator: torch.Generator, *, pad: int = 4, flip: bool = True
) -> torch.Tensor:
    """Randomly crop each (N, C, H, W) image from its zero-padded version and flip half of them."""
    n, c, h, w = images.shape
    span = 2 * pad + 1
    dy = torch.randint(0, span, (n,), generator=generator)
    dx = torch.randint(0, span, (n,), generator=generator)
    cols = torch.arange(w)
    if flip:
        flipped = torch.randint(0, 2, (n,), generator=generator).bool()
        cols = torch.where(flipped[:, None], w - 1 - cols, cols)
    rows = torch.arange(h)[None, :] + dy[:, None]  # (n, h)
    cols = cols + dx[:, None]  # (n, w)
    wp = w + 2 * pad
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w).to(images.device)
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    out = padded.reshape(n, c, -1).gather(2, flat.expand(n, c, h * w))
    return out.reshape(n, c, h, w)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) to float32 ``(x / 255 - mean) / std``; mean/std shaped (1, 3, 1, 1)."""
    # In place on the one new float tensor: the same operations, in the same order, as
    # ``(x / 255 - mean) / std``, without three temporary batches.
    return images.to(torch.float32, copy=True).div_(255.0).sub_(mean).div_(std)


class Augment:
    """Turns uint8 batches into the network's float input on ``device``.

    :meth:`train` applies random crop + flip then normalizes; :meth:`eval` only normalizes.
    ``generator`` (CPU) holds all the augmentation randomness; checkpoints save its state.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        *,
        generator: torch.Generator | None = None,
        pad: int | None = None,
        flip: bool = True,
        channels_last: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.mean = torch.tensor(list(mean), dtype=torch.float32, device=self.device).reshape(1, 3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32, device=self.device).reshape(1, 3, 1, 1)
        self.generator = generator if generator is not None else torch.Generator()
        self.pad = pad
        self.flip = flip
        self.channels_last = channels_last

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize(x.to(self.device, non_blocking=True), self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train(self, images: torch.Tensor) -> torch.Tensor:
        pad = self.pad if self.pad is not None else max(1, round(images.shape[-1] / 8))
        images = images.to(self.device, non_blocking=True)
        return self._finish(random_crop_flip(images, self.generator, pad=pad, flip=self.flip))

    def eval(self, images: torch.Tensor) -> torch.Tensor:
        return self._finish(images)


Triple = tuple[float, float, float]


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[Triple, Triple]:
    """Per-channel mean and std (population, on the [0, 1] scale) of uint8 (N, 3, H, W) images."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    count = max(1, images.numel() // 3)
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std < 1e-6, torch.ones_like(std), std)  # a constant channel: leave it unscaled
    m, d = [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]
    return (m[0], m[1], m[2]), (d[0], d[1], d[2])


def input_stats(
    class_names: Sequence[str], images: torch.Tensor, indices: np.ndarray, choice: str = "auto"
) -> tuple[Triple, Triple]:
    """Mean/std to normalize with (``choice`` is one of :data:`edgeres.metadata.NORMALIZATIONS`).

    ``auto``: CIFAR-10's for CIFAR-10's classes, else ``data``, the statistics of ``images[indices]``.
    """
    if choice in PUBLISHED_NORMALIZATIONS:
        return PUBLISHED_NORMALIZATIONS[choice]
    if choice == "auto" and tuple(n.lower() for n in class_names) == CIFAR10_CLASSES:
        return CIFAR10_MEAN, CIFAR10_STD
    return channel_stats(images[torch.from_numpy(np.asarray(indices, dtype=np.int64))])
