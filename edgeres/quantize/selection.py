"""Which images calibrate, which tune, and which measure: never the same ones twice.

Calibration images may come from the training set (that is what they are for), but
the images whose accuracy is reported must be held out from calibration and from
the tuning done by ``--method auto`` and ``--max-drop``. When the model was
trained by edgeres on the same data, its recorded validation split is reused, so
the reported accuracy is on images the model never trained on either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeres.data import ImageSource, open_source, stratified_sample
from edgeres.data.holdout import TrainingSplit, held_out_indices, same_data
from edgeres.errors import UsageError

__all__ = ["TUNE_SIZE", "Selection", "same_data", "select_images"]

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
    split: TrainingSplit | None = None,
    tune: bool = False,
) -> Selection:
    """Choose calibration, tuning and evaluation images; see the module docstring.

    Which images may be evaluated is :func:`edgeres.data.holdout.held_out_indices`'s rule.
    """
    if calib_size < 1:
        raise UsageError(f"--calib-size must be at least 1, got {calib_size}")
    calib_source = open_source(calib)
    labels = calib_source.labels
    everything = np.arange(len(calib_source), dtype=np.int64)
    eval_source: ImageSource | None = None
    candidates: np.ndarray | None = None
    note = "calibration and evaluation data are separate"
    if eval_data is not None:
        eval_source = calib_source if same_data(calib, eval_data) else open_source(eval_data)
        held, why = held_out_indices(eval_source.labels, eval_data, calib=calib, split=split, seed=seed)
        candidates = held if held is not None else np.arange(len(eval_source), dtype=np.int64)
        if held is not None:
            note = f"evaluated on {why}"
    on_calib = eval_source is calib_source and candidates is not None
    calib_side = np.setdiff1d(everything, candidates) if on_calib and candidates is not None else everything
    tune_indices = np.zeros(0, np.int64)
    if tune:
        rest = calib_side
        tune_indices = _sample(labels, rest, min(TUNE_SIZE, max(1, len(rest) // 5)), seed + 1)
        calib_side = np.setdiff1d(calib_side, tune_indices)
    if len(calib_side) == 0:
        raise UsageError(f"{calib_source.describe()} leaves no images to calibrate on; give more images")
    calib_indices = _sample(labels, calib_side, calib_size, seed)
    eval_indices = None
    if eval_source is not None and candidates is not None:
        eval_indices = _sample(eval_source.labels, candidates, eval_size, seed)
    return Selection(calib_source, calib_indices, tune_indices, eval_source, eval_indices, note)
