"""scikit-learn's embedded handwritten digits as a tiny offline demo data set.

1,797 images of 8x8 pixels with values 0..16 become 32x32 RGB uint8 (each pixel repeated
4x4, 16 -> 255), classes "0".."9". Needs scikit-learn (``pip install edgeres[demo]``).
"""

from __future__ import annotations

import numpy as np

from edgeres.data.sources import ArraySource
from edgeres.errors import MissingDependencyError

__all__ = ["digits_source"]

_UPSCALE = 4


def digits_source() -> ArraySource:
    """The digits data set as an :class:`ArraySource` of 32x32 RGB images, labels 0..9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise MissingDependencyError(
            "the 'digits' demo data needs scikit-learn; install it with: pip install edgeres[demo]"
        ) from exc
    bunch = load_digits()
    small = np.asarray(bunch.images, dtype=np.float64)  # (N, 8, 8), values 0..16
    gray = np.clip(np.rint(small * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    big = gray.repeat(_UPSCALE, axis=1).repeat(_UPSCALE, axis=2)
    rgb = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=-1))
    labels = np.asarray(bunch.target, dtype=np.int64)
    return ArraySource(rgb, labels, [str(d) for d in range(10)], description="scikit-learn digits")
