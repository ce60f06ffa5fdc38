"""Write a Q/DQ model with its weights' rounding learned and its biases corrected.

Both refinements start from the float model ``write_qdq`` really quantizes
(:func:`~edgeres.quantize.qdq.prepare_onnx`: BatchNorm folded) and the plain Q/DQ model written
from it, in a temporary folder, so an interrupted run leaves nothing behind and never an
unrefined ``output`` (which is written last, atomically):

1. learned rounding (:mod:`edgeres.quantize.learned_rounding`) writes the float model with
   weights ``q * s``, and the Q/DQ model is written again from it;
2. bias correction (:mod:`edgeres.quantize.bias_correction`) measures the mean output shift of
   the int8 weights against the original float weights, on the Q/DQ model as it now is, and
   folds it into the float biases;
3. the final Q/DQ model is written from the refined float model with the same ranges; where the
   rounding was learned, its integers are checked to be exactly the learned ones before the file
   takes its name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.quantize.adaround import RoundingSettings
from edgeres.quantize.bias_correction import BiasCorrection
from edgeres.quantize.layouts import Target
from edgeres.quantize.learned_rounding import LearnedRounding
from edgeres.quantize.qdq import QdqResult
from edgeres.quantize.ranges import Ranges
from edgeres.quantize.targets import WeightBits

__all__ = ["Refined", "write_bias_corrected", "write_refined"]


@dataclass(frozen=True)
class Refined:
    qdq: QdqResult
    bias_correction: BiasCorrection | None
    rounding: LearnedRounding | None


def write_refined(
    fp32_onnx: str | os.PathLike[str],
    ranges: Ranges,
    target: Target,
    output: str | os.PathLike[str],
    batches: Iterable[Mapping[str, np.ndarray]] | None,
    *,
    bias_correction: bool = True,
    rounding: RoundingSettings | None = None,
    exclude_nodes: Sequence[str] = (),
    calibration: Mapping[str, Any] | None = None,
    threads: int | None = None,
    stored_shifts: tuple[Mapping[str, np.ndarray], int] | None = None,
    stored_rounding: Mapping[str, np.ndarray] | None = None,
    on_rounded_layer: Callable[[str, np.ndarray], None] | None = None,
    weight_bits: WeightBits = 8,
    progress: bool = False,
) -> Refined:
    """:func:`~edgeres.quantize.qdq.write_qdq` with learned rounding (``rounding`` settings, or None
    for nearest) and bias correction (``bias_correction``).

    ``batches`` are the calibration batches (``{input: NCHW float32}``), or None where everything
    comes from a calibration cache: ``stored_shifts`` as for
    :func:`~edgeres.quantize.bias_correction.correct_biases`, ``stored_rounding`` the round-up
    bits of the layers already learned (by node). ``on_rounded_layer(node, bits)`` is called as
    each layer's rounding is learned. ``calibration`` is recorded in the model's metadata with
    what was done.
    """
    from edgeres.atomic import atomic_path, check_writable
    from edgeres.memory import release_free_memory
    from edgeres.quantize.bias_correction import correct_biases
    from edgeres.quantize.learned_rounding import check_integers, learn_rounding
    from edgeres.quantize.qdq import prepare_onnx, write_qdq
    from edgeres.quantize.targets import faithful_to

    output = Path(output)
    check_writable(output)  # before minutes of work, not after them
    disabled = faithful_to(target)
    recorded = dict(calibration or {})
    with tempfile.TemporaryDirectory(prefix="edgeres-refine-") as tmp_dir:
        tmp = Path(tmp_dir)

        def qdq_of(model: Path, name: str, info: Mapping[str, Any] | None = None) -> QdqResult:
            return write_qdq(
                model, ranges, target, tmp / name, exclude_nodes=exclude_nodes, calibration=info,
                weight_bits=weight_bits,
            )  # fmt: skip

        prepared = prepare_onnx(fp32_onnx, tmp / "prepared.onnx")
        model, plain = prepared, qdq_of(prepared, "plain.onnx")
        learned = None
        if rounding is not None:
            images = None if batches is None else [next(iter(b.values())) for b in batches]
            learned = learn_rounding(
                prepared, plain.path, images or [], tmp / "rounded.onnx", weight_bits=weight_bits,
                settings=rounding, disabled_optimizers=disabled, threads=threads, stored=stored_rounding,
                on_layer=on_rounded_layer, progress=progress,
            )  # fmt: skip
            model, plain = tmp / "rounded.onnx", qdq_of(tmp / "rounded.onnx", "rounded.qdq.onnx")
            release_free_memory()  # before bias correction's own peak
            if images is not None:
                batches = [{"input": x} for x in images]  # read once, used twice
            recorded["learned_rounding"] = {"method": "adaround", "layers": len(learned.layers)}
        corrected = None
        if bias_correction:
            corrected = correct_biases(
                model, plain.path, batches, tmp / "corrected.onnx", disabled_optimizers=disabled,
                threads=threads, stored=stored_shifts, reference=prepared if learned is not None else None,
            )  # fmt: skip
            model = tmp / "corrected.onnx"
            recorded["bias_correction"] = {"layers": len(corrected.layers), "images": corrected.num_images}
        final = qdq_of(model, "final.onnx", recorded)
        if learned is not None:
            check_integers(model, final.path, learned, weight_bits)
        with atomic_path(output, suffix=".onnx.tmp") as out:
            shutil.copyfile(final.path, out)
    return Refined(
        QdqResult(output, final.target, final.num_quantized_nodes, final.excluded_nodes, final.size_bytes),
        corrected,
        learned,
    )


def write_bias_corrected(
    fp32_onnx: str | os.PathLike[str],
    ranges: Ranges,
    target: Target,
    output: str | os.PathLike[str],
    batches: Iterable[Mapping[str, np.ndarray]] | None,
    *,
    exclude_nodes: Sequence[str] = (),
    calibration: Mapping[str, Any] | None = None,
    threads: int | None = None,
    stored: tuple[Mapping[str, np.ndarray], int] | None = None,
    weight_bits: WeightBits = 8,
) -> tuple[QdqResult, BiasCorrection]:
    """:func:`write_refined` with bias correction alone (nearest rounding)."""
    done = write_refined(
        fp32_onnx, ranges, target, output, batches, exclude_nodes=exclude_nodes, calibration=calibration,
        threads=threads, stored_shifts=stored, weight_bits=weight_bits,
    )  # fmt: skip
    assert done.bias_correction is not None
    return done.qdq, done.bias_correction
