"""The quantize workflow's bias-correction step for one target: measured, reused from the cache, or off.

Corrections live in the calibration cache under the layout, its weight bits and the layers kept
in float (:mod:`edgeres.quantize.bias_cache`); a reused cache that keeps them needs no images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeres.errors import UsageError

if TYPE_CHECKING:
    from edgeres.metadata import ModelMeta
    from edgeres.quantize.selection import Selection
    from edgeres.quantize.targets import Target, WeightBits
    from edgeres.quantize.workflow import Calibration, QuantizeOptions

__all__ = ["bias_corrected"]

log = logging.getLogger("edgeres.quantize.workflow")  # its lines read as quantize's


def bias_corrected(
    fp32: Path,
    output: Path,
    calibration: Calibration,
    target: Target,
    meta: ModelMeta,
    selection: Selection | None,
    exclude: tuple[str, ...],
    opts: QuantizeOptions,
    bits: WeightBits,
) -> tuple[Any, dict[str, Any]] | None:
    """Bias correction measured on the calibration images, or as a reused cache keeps it; None when
    neither is at hand and it was not asked for explicitly (``opts.bias_correction`` None)."""
    from edgeres.data import BatchReader
    from edgeres.quantize.bias_cache import correction_key, store_shifts, stored_shifts
    from edgeres.quantize.bias_correction import NothingToCorrect, write_bias_corrected

    key = correction_key(target, exclude, bits)
    stored = stored_shifts(calibration.cache, key) if calibration.reused_cache else None
    reader = None
    if stored is None:
        if selection is None and opts.bias_correction is None:
            log.warning(
                "bias correction: off for the %s layout; calibration cache %s keeps none for it "
                "(give --calib DIR to measure it)",
                target,
                calibration.cache,
            )
            return None
        if selection is None:
            raise UsageError(
                f"calibration cache {calibration.cache} keeps no bias correction for the {target} "
                "layout with these layers in float: give --calib DIR to measure it"
            )
        reader = BatchReader(
            selection.calib_source, selection.calib_indices, meta.preprocessing, "input", 32, progress=False
        )
    recorded = {
        "method": calibration.method,
        "images": calibration.num_images,
        "cache": calibration.cache.name,
    }
    try:
        qdq, done = write_bias_corrected(
            fp32, calibration.ranges, target, output, reader, exclude_nodes=exclude, calibration=recorded,
            threads=opts.threads, stored=stored, weight_bits=bits,
        )  # fmt: skip
    except NothingToCorrect:
        if opts.bias_correction:  # asked for by name: say that it cannot be done
            raise
        return None  # every weighted layer is float: nothing to correct
    if stored is None:
        store_shifts(calibration.cache, key, done.shifts, done.num_images)
    return qdq, done.to_dict()
