"""The paper's CIFAR augmentation as one batched op, and the normalization shared with evaluation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgeres.data import preprocess_array
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, Preprocessing
from edgeres.train.augment import Augment, channel_stats, normalize, random_crop_flip


def batch(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def reference(images: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """The same draws applied image by image: zero-pad, crop at (dy, dx), then flip."""
    n, _, h, w = images.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flips = torch.randint(0, 2, (n,), generator=generator).bool()
    out = []
    for img, y, x, f in zip(images, dy.tolist(), dx.tolist(), flips.tolist(), strict=True):
        crop = F.pad(img, (pad, pad, pad, pad))[:, y : y + h, x : x + w]
        out.append(crop.flip(-1) if f else crop)
    return torch.stack(out)


def test_crop_and_flip_match_a_per_image_reference() -> None:
    x = batch(16)
    ours = random_crop_flip(x, torch.Generator().manual_seed(3), pad=4)
    assert ours.shape == x.shape and ours.dtype == torch.uint8
    assert torch.equal(ours, reference(x, torch.Generator().manual_seed(3), pad=4))
    assert not torch.equal(ours, x)


def test_augmentation_is_deterministic_given_the_generator() -> None:
    x = batch()
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(random_crop_flip(x, g1), random_crop_flip(x, g2))
    assert torch.equal(g1.get_state(), g2.get_state())
    assert not torch.equal(random_crop_flip(x, g1), random_crop_flip(x, torch.Generator().manual_seed(8)))


def test_no_padding_and_no_flip_is_the_identity() -> None:
    x = batch()
    assert torch.equal(random_crop_flip(x, torch.Generator(), pad=0, flip=False), x)


def test_padding_is_black_and_content_only_shifts() -> None:
    x = torch.full((64, 3, 32, 32), 200, dtype=torch.uint8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), pad=4)
    values = set(out.unique().tolist())
    assert values == {0, 200}
    # every crop keeps at least a 28x28 block of the image
    assert int((out[:, 0] == 200).sum(dim=(1, 2)).min()) >= 28 * 28


def test_normalize_matches_the_evaluation_preprocessing_bit_for_bit() -> None:
    x = batch(4)
    pre = Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    aug = Augment(CIFAR10_MEAN, CIFAR10_STD)
    ours = aug.eval(x)
    theirs = preprocess_array(x.permute(0, 2, 3, 1).numpy(), pre)
    assert ours.dtype == torch.float32
    np.testing.assert_array_equal(ours.numpy(), theirs)
    assert torch.equal(normalize(x, aug.mean, aug.std), ours)


def test_augment_train_and_channels_last() -> None:
    x = batch(4)
    aug = Augment(CIFAR10_MEAN, CIFAR10_STD, generator=torch.Generator().manual_seed(1), channels_last=True)
    out = aug.train(x)
    assert out.shape == (4, 3, 32, 32) and out.is_contiguous(memory_format=torch.channels_last)
    expected = normalize(random_crop_flip(x, torch.Generator().manual_seed(1)), aug.mean, aug.std)
    assert torch.equal(out.contiguous(), expected)


def test_channel_stats() -> None:
    x = batch(10)
    mean, std = channel_stats(x, chunk=3)
    arr = x.numpy().astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, arr.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(std, arr.std(axis=(0, 2, 3)), atol=1e-6)
    _, flat_std = channel_stats(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    assert flat_std == (1.0, 1.0, 1.0)  # a constant channel is left unscaled, not divided by 0
