"""Which images may be reported on: never ones the model was trained or calibrated on.

This is the one rule that ``edgeres quantize`` (:mod:`edgeres.quantize.selection`) and the
pipeline's eval stage (:mod:`edgeres.pipeline.context`) both follow, in
:func:`held_out_indices`:

1. on the data ``edgeres train`` trained the model on: the validation images it held out
   (:class:`TrainingSplit`, recorded in the checkpoint), so the reported accuracy is on
   images the model never trained on; calibration on that data leaves them out too;
2. on the calibration data itself: a class-stratified 10% (seeded) that calibration leaves out;
3. on any other data: every image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.data.sampling import split_indices

__all__ = ["HELD_OUT_FRACTION", "TrainingSplit", "held_out_indices", "same_data"]

#: The share of the calibration data held out when it is also the evaluation data.
HELD_OUT_FRACTION = 0.1


def same_data(a: str, b: str) -> bool:
    """Whether two data specs name the same data (equal, or the same path once resolved)."""
    if a == b:
        return True
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


@dataclass(frozen=True)
class TrainingSplit:
    """What ``edgeres train`` recorded of its data.

    ``data`` is what it trained on and ``val_indices`` the images of it that it held out for
    validation; or, when it validated on separate data, ``data`` is that data and
    ``val_indices`` is None (all of it is unseen). ``num_images`` is how many images ``data``
    had then (decoded and unreadable), so a folder that has changed since can be detected.
    """

    data: str
    val_indices: tuple[int, ...] | None
    num_images: int | None = None

    @classmethod
    def from_checkpoint(cls, extra: Mapping[str, Any] | None) -> TrainingSplit | None:
        """The split in a checkpoint's ``extra["train"]`` record, or None when there is none."""
        record = extra.get("train") if isinstance(extra, Mapping) else None
        if not isinstance(record, Mapping):
            return None
        settings = record.get("settings") or {}
        split = record.get("split") or {}
        if not isinstance(settings, Mapping) or not isinstance(split, Mapping):
            return None
        if split.get("kind") == "val_data" and split.get("val_data"):
            return cls(str(split["val_data"]), None)
        data, val = settings.get("data"), split.get("val_indices")
        if not data or val is None:
            return None
        indices = tuple(int(i) for i in np.asarray(val, dtype=np.int64).reshape(-1))
        # images in the folder when it was trained on: decoded ones plus those skipped as unreadable
        seen = record.get("data") or {}
        kept, skipped = seen.get("images"), seen.get("skipped")
        num_train, num_val = split.get("num_train"), split.get("num_val")
        num_images = None
        if isinstance(kept, int) and isinstance(skipped, int):
            num_images = kept + skipped
        elif isinstance(num_train, int) and isinstance(num_val, int):
            num_images = num_train + num_val
        return cls(str(data), indices, num_images)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "data": self.data,
            "val_indices": None if self.val_indices is None else list(self.val_indices),
        }
        if self.num_images is not None:
            out["num_images"] = self.num_images
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingSplit | None:
        """A split from :meth:`to_dict`, or None when ``d`` is not one."""
        data, val, n = d.get("data"), d.get("val_indices"), d.get("num_images")
        if not isinstance(data, str) or not (val is None or isinstance(val, list)):
            return None
        indices = None if val is None else tuple(int(i) for i in val)
        return cls(data, indices, n if isinstance(n, int) else None)

    def validation_of(self, spec: str) -> np.ndarray | None:
        """The held-out image numbers when ``spec`` is the data trained on; else None."""
        if self.val_indices is None or not same_data(self.data, spec):
            return None
        return np.asarray(self.val_indices, dtype=np.int64)


def held_out_indices(
    labels: np.ndarray,
    spec: str,
    *,
    calib: str | None,
    split: TrainingSplit | None,
    seed: int = 0,
) -> tuple[np.ndarray | None, str]:
    """(the images of ``spec`` that may be reported on, how they were chosen); see the module docstring.

    ``labels`` are ``spec``'s; ``calib`` the calibration data (None when nothing is calibrated);
    None for the images means every image of ``spec``.
    """
    if split is not None:
        held = split.validation_of(spec)
        if held is not None:
            return held, f"the {len(held)} validation images edgeres train held out"
    if calib is not None and same_data(calib, spec):
        _, held = split_indices(labels, val_fraction=HELD_OUT_FRACTION, seed=seed)
        pct = round(100 * HELD_OUT_FRACTION)
        return held, f"{len(held)} images ({pct}%, stratified, seed {seed}) held out from calibration"
    return None, "calibration and evaluation data are separate"
