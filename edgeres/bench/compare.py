"""What bench says beside its figures: each model's ratio to the FP32 one, and caveats.

A ratio is a row's median latency over the FP32 model's median at the same batch and streams
(below 1: faster). The FP32 model is the first model whose precision, as edgeres reads it
from the file (:mod:`edgeres.precision`), is ``fp32``. A caveat marks a figure that says little
about the model: FP16 timed on a CPU, or a TensorRT- or OpenVINO-layout INT8 model on ONNX
Runtime's CPU.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from edgeres.bench.results import BenchResult

__all__ = [
    "FP16_ON_CPU",
    "OPENVINO_LAYOUT_ON_ORT",
    "TENSORRT_LAYOUT_ON_CPU",
    "caveat_for",
    "fp32_reference",
    "onnx_target",
    "ratios_to_fp32",
]

FP16_ON_CPU = "FP16 on a CPU: no FP16 arithmetic there; CPU time not representative"
TENSORRT_LAYOUT_ON_CPU = "tensorrt layout: for engines; CPU time not representative"
OPENVINO_LAYOUT_ON_ORT = (
    "openvino layout: for OpenVINO; ONNX Runtime runs its residual convolutions in float, "
    "time not representative"
)


def caveat_for(source: object, backend: str, device: str, precision: str) -> str | None:
    """The caveat of a row timed with this backend, device and precision, None when its figure stands."""
    if not device.startswith("cpu"):
        return None
    if "fp16" in precision:
        return FP16_ON_CPU
    if "int8" in precision and backend == "onnxruntime":
        target = onnx_target(source)
        if target == "tensorrt":
            return TENSORRT_LAYOUT_ON_CPU
        if target == "openvino":
            return OPENVINO_LAYOUT_ON_ORT
    return None


def onnx_target(source: object) -> str | None:
    """The Q/DQ layout ``edgeres quantize`` recorded in the model (``edgeres.quantization``'s target)."""
    if not isinstance(source, (str, os.PathLike)) or Path(source).suffix.lower() != ".onnx":
        return None
    import onnx

    from edgeres.quantize.qdq import QUANT_META_KEY

    model = onnx.load(str(source), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == QUANT_META_KEY:
            try:
                target = json.loads(prop.value).get("target")
            except (ValueError, AttributeError):
                return None
            return target if isinstance(target, str) else None
    return None


def fp32_reference(results: Sequence[BenchResult]) -> str | None:
    """The first model, in the order given, whose rows are fp32; None when there is none."""
    return next((r.model for r in results if r.precision == "fp32"), None)


def ratios_to_fp32(results: Sequence[BenchResult]) -> list[float | None]:
    """Per row: its median over the FP32 model's median at the same batch and streams (None: no such row)."""
    ref = fp32_reference(results)
    base = {(r.batch, r.streams): r.median_ms for r in results if r.model == ref and r.ok and r.median_ms}
    out: list[float | None] = []
    for r in results:
        b = base.get((r.batch, r.streams))
        out.append(r.median_ms / b if r.ok and r.median_ms is not None and b else None)
    return out
