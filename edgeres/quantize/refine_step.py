"""The quantize workflow's refinement step for one target: learned rounding and bias correction,
measured, reused from the calibration cache, or off.

Bias corrections live in the cache under the layout, its weight bits, the layers kept in float
and the rounding (:mod:`edgeres.quantize.bias_cache`); learned rounding under the same plus its
settings, one entry per finished layer (:mod:`edgeres.quantize.rounding_cache`). A reused cache
that keeps them needs no images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeres.errors import UsageError

if TYPE_CHECKING:
    from edgeres.metadata import ModelMeta
    from edgeres.quantize.qdq import QdqResult
    from edgeres.quantize.selection import Selection
    from edgeres.quantize.targets import Target, WeightBits
    from edgeres.quantize.workflow import Calibration, QuantizeOptions

__all__ = ["refined"]

log = logging.getLogger("edgeres.quantize.workflow")  # its lines read as quantize's


def refined(
    fp32: Path,
    output: Path,
    calibration: Calibration,
    target: Target,
    meta: ModelMeta,
    selection: Selection | None,
    exclude: tuple[str, ...],
    opts: QuantizeOptions,
    bits: WeightBits,
) -> tuple[QdqResult, dict[str, Any] | None, dict[str, Any] | None] | None:
    """``(Q/DQ model, bias correction, learned rounding)`` as asked for by ``opts`` (each record a
    dict, or None where it did not run); None when neither runs, and the plain model is wanted."""
    from edgeres.data import BatchReader
    from edgeres.quantize.bias_cache import correction_key, store_shifts, stored_shifts
    from edgeres.quantize.bias_correction import NothingToCorrect
    from edgeres.quantize.refine import write_refined
    from edgeres.quantize.rounding_cache import rounding_key, store_rounded_layer, stored_rounding

    rounding = opts.rounding_settings if opts.rounding == "adaround" else None
    bias = opts.bias_correction is not False
    key = correction_key(target, exclude, bits)
    if rounding is not None:
        key = rounding_key(target, exclude, bits, rounding.key())
    learned = stored_rounding(calibration.cache, key) if rounding is not None else None
    if rounding is not None and not learned and selection is None:
        raise UsageError("learned rounding needs calibration images: give --calib DIR")
    shifts = stored_shifts(calibration.cache, key) if bias and calibration.reused_cache else None
    if bias and shifts is None and selection is None:
        if opts.bias_correction:
            raise UsageError(
                f"calibration cache {calibration.cache} keeps no bias correction for the {target} "
                "layout with these settings: give --calib DIR to measure it"
            )
        log.warning(
            "bias correction: off for the %s layout; calibration cache %s keeps none for it "
            "(give --calib DIR to measure it)",
            target,
            calibration.cache,
        )
        bias = False
    if rounding is None and not bias:
        return None
    reader = None
    if selection is not None:
        reader = BatchReader(
            selection.calib_source, selection.calib_indices, meta.preprocessing, "input", 32, progress=False
        )
    recorded = {
        "method": calibration.method,
        "images": calibration.num_images,
        "cache": calibration.cache.name,
    }

    def write(bias: bool) -> Any:
        return write_refined(
            fp32, calibration.ranges, target, output, reader, bias_correction=bias, rounding=rounding,
            exclude_nodes=exclude, calibration=recorded, threads=opts.threads, stored_shifts=shifts,
            stored_rounding=learned,
            on_rounded_layer=lambda node, up: store_rounded_layer(calibration.cache, key, node, up),
            weight_bits=bits, progress=opts.progress,
        )  # fmt: skip

    try:
        done = write(bias)
    except NothingToCorrect:
        if opts.bias_correction or rounding is None:
            if opts.bias_correction:  # asked for by name: say that it cannot be done
                raise
            return None  # every weighted layer is float: nothing to correct
        done = write(False)
    corrected = done.bias_correction
    if corrected is not None and shifts is None:
        store_shifts(calibration.cache, key, corrected.shifts, corrected.num_images)
    return (
        done.qdq,
        corrected.to_dict() if corrected is not None else None,
        done.rounding.to_dict() if done.rounding is not None else None,
    )
