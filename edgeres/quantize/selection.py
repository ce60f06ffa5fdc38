"""Which images calibrate, which tune, and which measure: never the same ones twice.

Calibration images may come from the training set (that is what they are for), but
the images whose accuracy is reported must be held out from calibration and from
the tuning done by ``--method auto`` and ``--max-drop``. When the model was
trained by edgeres on the same data, its recorded validation split is reused, so
the reported accuracy is on images the model never trained on either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.data import ImageSource, open_source, split_indices, stratified_sample
from edgeres.errors import UsageError

#: Images set aside from the calibration side for --method auto and --max-drop.
TUNE_SIZE = 1000


@dataclass(frozen=True)
class Selection:
    calib_source: ImageSource
    calib_indices: np.ndarray
    #: Held out from calibration; used to choose a method or the layers kept in float.
    tune_indices: np.ndarray
    eval_source: ImageSource | None
    eval_indices: np.ndarray | None
    #: How the held-out images were chosen, for the report.
    note: str


def same_data(a: str, b: str) -> bool:
    """Whether two data specs name the same data (equal, or the same path once resolved)."""
    if a == b:
        return True
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def training_split(extra: Mapping[str, Any], data: str) -> np.ndarray | None:
    """The validation indices edgeres train recorded, when it trained on ``data``."""
    record = extra.get("train") if isinstance(extra, Mapping) else None
    if not isinstance(record, Mapping):
        return None
    trained_on = str((record.get("settings") or {}).get("data") or "")
    split = record.get("split") or {}
    val = split.get("val_indices")
    if not trained_on or val is None or not same_data(trained_on, data):
        return None
    return np.asarray(val, dtype=np.int64).reshape(-1)


def _sample(labels: np.ndarray, candidates: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    if size is None or size >= len(candidates):
        return candidates
    return candidates[stratified_sample(labels[candidates], size, seed=seed)]


def select_images(
    calib: str,
    eval_data: str | None,
    *,
    calib_size: int,
    eval_size: int | None = None,
    seed: int = 0,
    extra: Mapping[str, Any] | None = None,
    tune: bool = False,
) -> Selection:
    """Choose calibration, tuning and evaluation images; see the module docstring."""
    if calib_size < 1:
        raise UsageError(f"--calib-size must be at least 1, got {calib_size}")
    calib_source = open_source(calib)
    labels = calib_source.labels
    everything = np.arange(len(calib_source), dtype=np.int64)
    held: np.ndarray | None = None
    note = "calibration and evaluation data are separate"
    if eval_data is not None and same_data(calib, eval_data):
        held = training_split(extra or {}, calib)
        if held is not None:
            note = f"evaluated on the {len(held)} validation images edgeres train held out"
        else:
            _, held = split_indices(labels, val_fraction=0.1, seed=seed)
            note = f"evaluated on {len(held)} images (10%, stratified, seed {seed}) held out from calibration"
    calib_side = np.setdiff1d(everything, held) if held is not None else everything
    tune_indices = np.zeros(0, np.int64)
    if tune:
        rest = calib_side
        tune_indices = _sample(labels, rest, min(TUNE_SIZE, max(1, len(rest) // 5)), seed + 1)
        calib_side = np.setdiff1d(calib_side, tune_indices)
    if len(calib_side) == 0:
        raise UsageError(f"{calib_source.describe()} leaves no images to calibrate on; give more images")
    calib_indices = _sample(labels, calib_side, calib_size, seed)
    eval_source, eval_indices = None, None
    if eval_data is not None:
        if held is not None:
            eval_source, candidates = calib_source, held
        else:
            eval_source = open_source(eval_data)
            candidates = np.arange(len(eval_source), dtype=np.int64)
        eval_indices = _sample(eval_source.labels, candidates, eval_size, seed)
    return Selection(calib_source, calib_indices, tune_indices, eval_source, eval_indices, note)
