"""The small model and images ``edgeres doctor`` checks with: no download, no training, a few seconds.

A resnet20 (the CIFAR net of He et al., 0.27M parameters, 32x32 inputs) with random
weights would predict one class for every image: the average of its features drowns
what differs between images. So its BatchNorm statistics are measured on the images (as
training would leave them) under random scales and shifts, and its classifier is a random
rotation of the features' four main directions of variation across the images, centred and
scaled: the predictions spread over the classes and stay away from ties, as a trained
model's do, so an agreement of two backends means something.

The images are synthetic 32x32 pictures: a random colour, stripes of a random direction
and frequency, and noise. Calibration and comparison use different images. The compared
images are the half of twice as many on which the model's two top classes are furthest
apart: on a near tie any two backends agree or not by chance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ARCH", "NUM_CLASSES", "Reference", "build_reference", "synthetic_images"]

ARCH = "resnet20"
NUM_CLASSES = 10
_DIRECTIONS = 4  # main directions of the features the classifier reads


@dataclass(frozen=True)
class Reference:
    """The model, its inputs and PyTorch's logits for them; files written into ``folder``."""

    module: Any
    meta: Any
    checkpoint: Path
    #: float32 (N, 3, 32, 32) normalized inputs the backends are compared on (saved as inputs.npy).
    inputs: np.ndarray
    #: PyTorch's float32 (N, classes) logits for ``inputs``.
    logits: np.ndarray
    #: A .npz of uint8 calibration images (other images than ``inputs``).
    calib: Path

    @property
    def classes_predicted(self) -> int:
        return len(np.unique(self.logits.argmax(1)))


def synthetic_images(n: int, seed: int, size: int = 32) -> np.ndarray:
    """``n`` uint8 RGB images (N, size, size, 3): a colour, stripes and noise, each its own."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    colour = rng.uniform(0, 255, (n, 1, 1, 3))
    angle = rng.uniform(0, np.pi, (n, 1, 1))
    freq = rng.uniform(0.2, 1.0, (n, 1, 1))
    amplitude = rng.uniform(20, 80, (n, 1, 1))
    stripes = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * freq) * amplitude)[..., None]
    noise = rng.normal(0, 20, (n, size, size, 3))
    return np.clip(colour + stripes + noise, 0, 255).astype(np.uint8)


def build_reference(folder: Path, *, images: int = 64, seed: int = 0) -> Reference:
    """Make the model, save it as ``folder/resnet20.pt``, and its calibration images as ``calib.npz``."""
    import torch

    from edgeres.checkpoint import save_checkpoint
    from edgeres.data.preprocess import preprocess_array
    from edgeres.metadata import ModelMeta, Provenance
    from edgeres.models import get_model, get_spec

    spec = get_spec(ARCH)
    pre = spec.preprocessing
    calib_images = synthetic_images(images, seed + 1)
    calib_x = torch.from_numpy(preprocess_array(calib_images, pre))
    candidates = preprocess_array(synthetic_images(2 * images, seed + 2), pre)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = get_model(ARCH, num_classes=NUM_CLASSES)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                c = layer.num_features
                layer.reset_running_stats()
                layer.momentum = None  # a plain average over the calibration batch
                layer.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                layer.bias.copy_(torch.randn(c, generator=gen) * 0.2)
        model.train()
        model(calib_x)  # the running statistics of the images, as training leaves them
        model.eval()
        feats = model.forward_features(calib_x)  # type: ignore[operator]  # CifarResNet's, not nn.Module's
        centre = feats.mean(0)
        _, singular, vh = torch.linalg.svd(feats - centre, full_matrices=False)
        k = min(_DIRECTIONS, vh.shape[0])
        spread = (singular[:k] / feats.shape[0] ** 0.5).clamp_min(1e-6)
        rotation = torch.linalg.qr(torch.randn(NUM_CLASSES, k, generator=gen))[0]
        weight = 3.0 * rotation @ (vh[:k] / spread[:, None])
        fc = model.get_submodule("fc")
        assert isinstance(fc, torch.nn.Linear)
        fc.weight.copy_(weight)
        fc.bias.copy_(-(weight @ centre))
        scores = model(torch.from_numpy(candidates)).numpy()
    top2 = np.sort(scores, axis=1)[:, -2:]
    clear = np.sort(np.argsort(top2[:, 0] - top2[:, 1], kind="stable")[:images])  # widest margins first
    inputs, logits = np.ascontiguousarray(candidates[clear]), scores[clear]

    meta = ModelMeta(
        arch=ARCH,
        num_classes=NUM_CLASSES,
        preprocessing=pre,
        provenance=Provenance(source=f"edgeres doctor, random weights, seed {seed}", epochs=0),
    )
    checkpoint = save_checkpoint(model, meta, folder / f"{ARCH}.pt")
    calib = folder / "calib.npz"
    np.savez(calib, images=calib_images)
    np.save(folder / "inputs.npy", inputs)
    return Reference(model, meta, checkpoint, inputs, logits.astype(np.float32), calib)
