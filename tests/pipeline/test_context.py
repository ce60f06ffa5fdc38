"""Which images the pipeline evaluates: never ones calibration used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeres.pipeline import PipelineConfig
from edgeres.pipeline.context import TRAIN_SPLIT, Context
from edgeres.pipeline.state import PipelineState


def _context(out: Path, split: dict, calib: str | None) -> Context:
    out.mkdir()
    (out / TRAIN_SPLIT).write_text(json.dumps(split))
    return Context(Path("m.pt"), out, PipelineConfig(), calib, None, False, PipelineState(out))


def test_separate_validation_data_that_also_calibrates_is_held_out(tmp_path: Path) -> None:
    """Trained with --val-data digits (no indices recorded), calibrated on digits too."""
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")
    from edgeres.data import open_source, split_indices

    ctx = _context(tmp_path / "out", {"data": "digits", "val_indices": None}, calib="digits")
    assert ctx.eval_data()[0] == "digits"
    _, indices, note = ctx.eval_images("digits")
    _, held = split_indices(open_source("digits").labels, val_fraction=0.1, seed=0)
    assert np.array_equal(np.sort(indices), np.sort(held)) and "held out from calibration" in note


def test_separate_validation_data_not_used_to_calibrate_is_used_whole(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")
    ctx = _context(tmp_path / "out", {"data": "digits", "val_indices": None}, calib=None)
    _, indices, note = ctx.eval_images("digits")
    assert len(indices) == 1797 and note == "1797 images of digits"
