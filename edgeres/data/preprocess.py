"""The one preprocessing code path shared by evaluation, calibration and training data.

An image becomes the model's input like this (torchvision's ``Resize`` + ``CenterCrop`` +
``ToTensor`` + ``Normalize``, so a model trained with those sees the same numbers here):

1. convert to 8-bit RGB (:func:`to_rgb`);
2. if it is not already exactly ``input_size``, resize its shorter side to
   ``pre.resize_to`` (bilinear) and center-crop ``input_size``;
3. scale to [0, 1], subtract ``mean`` and divide by ``std``, per channel;
4. lay out as float32 CHW.

:func:`preprocess_array` does steps 3-4 for a whole uint8 NHWC batch at once and gives
bit-identical results to :func:`preprocess` on the same pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from edgeres.errors import UsageError
from edgeres.metadata import Preprocessing

#: Images whose long side is more than this many times the short side are not resized (image
#: files are skipped as unreadable): resizing the short side to the model's size would make
#: the long side absurd (a 1 KB PNG of 1x1,000,000 pixels would become 32 x 32,000,000).
MAX_ASPECT_RATIO = 20

__all__ = ["MAX_ASPECT_RATIO", "preprocess", "preprocess_array", "resize_and_crop", "to_rgb"]

_SCALE = np.float32(255.0)


def to_rgb(img: Image.Image) -> Image.Image:
    """Return ``img`` as an 8-bit RGB image.

    Grayscale, 1-bit, palette, CMYK, YCbCr and alpha images are converted with Pillow (alpha is
    dropped, as torchvision's default loader does). 16-bit grayscale (``I;16``) is scaled down
    to 8 bits; 32-bit integer (``I``) is treated as 16-bit when its values exceed 255; float
    (``F``) is treated as [0, 1] when its maximum is at most 1, else as [0, 255].
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or (img.mode == "I" and arr.size and arr.max() > 255):
            arr = arr / 257.0
        elif img.mode == "F" and arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        # Pillow warns when a palette image with transparency goes straight to RGB.
        img = img.convert("RGBA")
    return img.convert("RGB")


def resize_and_crop(img: Image.Image, pre: Preprocessing) -> Image.Image:
    """Resize the shorter side to ``pre.resize_to`` (bilinear), then center-crop ``input_size``.

    An image already exactly ``input_size`` is returned untouched. When the crop would not
    fit (a non-square input size larger than ``resize_to`` on its long side) the image is
    scaled up just enough to cover it, instead of padding.
    """
    th, tw = pre.input_size
    w, h = img.size
    if (h, w) == (th, tw):
        return img
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):  # bounds the resized size (see sources.py)
        raise UsageError(
            f"images of {w}x{h} pixels have an aspect ratio beyond {MAX_ASPECT_RATIO}:1; "
            "crop or pad them before use"
        )
    short, long_ = min(w, h), max(w, h)
    new_short = pre.resize_to
    new_long = int(new_short * long_ / short)  # torchvision's rounding
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    if nw < tw or nh < th:
        scale = max(tw / w, th / h)
        nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    top = round((nh - th) / 2.0)
    left = round((nw - tw) / 2.0)
    return img.crop((left, top, left + tw, top + th))


def _stats(pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(pre.mean, dtype=np.float32), np.asarray(pre.std, dtype=np.float32)


def preprocess(img: Image.Image, pre: Preprocessing) -> np.ndarray:
    """One image to the model's input: float32 array of shape (3, H, W)."""
    img = resize_and_crop(to_rgb(img), pre)
    hwc = np.asarray(img, dtype=np.uint8)
    mean, std = _stats(pre)
    x = (hwc.astype(np.float32) / _SCALE - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_array(images: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """A uint8 batch (N, H, W, 3) or grayscale (N, H, W) to float32 (N, 3, H, W).

    Batches already at ``input_size`` are normalized in one vectorized step; other sizes go
    image by image through Pillow (:func:`resize_and_crop`), exactly as :func:`preprocess`.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise UsageError(f"image arrays must be uint8 (0..255), got {arr.dtype}; convert them before use")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise UsageError(f"image arrays must have shape (N, H, W, 3) or (N, H, W), got {arr.shape}")
    th, tw = pre.input_size
    if arr.shape[1:3] != (th, tw):
        resized = [np.asarray(resize_and_crop(Image.fromarray(a), pre), dtype=np.uint8) for a in arr]
        arr = np.stack(resized) if resized else np.zeros((0, th, tw, 3), np.uint8)
    mean, std = _stats(pre)
    x = (arr.astype(np.float32) / _SCALE - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
