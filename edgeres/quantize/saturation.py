"""Whether this CPU's int8 kernels compute a Q/DQ model less exactly than its graph says.

x86 CPUs without VNNI or AMX (AVX2, AVX-512 without VNNI) multiply u8 activations by s8 weights
with ``vpmaddubsw``, which adds each pair of products in int16 and saturates: 255 * 127 * 2 is
64770, beyond 32767. ONNX Runtime does so for u8 activations (the cpu layout); OpenVINO for any
int8 model. With 7-bit weights (``edgeres quantize --weight-bits 7``; at most 64) a pair stays
below 32767. Measured here (AMD EPYC, AVX2) on a resnet20: the 8-bit cpu model agreed with FP32
on 93.0% of 500 images against 98.8% for the same graph computed exactly; 7-bit, 98.6%.

:func:`saturation_caveat` reads the graph, not edgeres's metadata, so it judges any Q/DQ ONNX.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["SATURATING_BACKENDS", "int8_weight_levels", "saturation_caveat"]

#: Backends whose CPU int8 kernels add u8 x s8 pairs in int16 on such CPUs.
SATURATING_BACKENDS = ("onnxruntime", "openvino")
#: The largest weight level whose pair of products with u8 activations fits in int16.
SAFE_LEVEL = 64


def int8_weight_levels(path: str | os.PathLike[str]) -> tuple[int, bool] | None:
    """(largest |weight level| of the model's weighted ops, whether any activation is uint8).

    Weight levels are read from int8 weight initializers (the cpu layout) or, for float
    weights behind a QuantizeLinear (the tensorrt layout), as round(max |W| / scale). None
    when the model has no quantized weights.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name: t for t in graph.initializer}
    largest: int | None = None
    uint8 = False
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zero_point = inits.get(node.input[2]) if len(node.input) > 2 else None
        if zero_point is not None and zero_point.data_type == TensorProto.UINT8:
            uint8 = True
        data = inits.get(node.input[0])
        if data is None or len(data.dims) < 2:
            continue
        values = numpy_helper.to_array(data)
        if node.op_type == "DequantizeLinear" and data.data_type == TensorProto.INT8:
            level = int(np.abs(values.astype(np.int32)).max(initial=0))
        elif node.op_type == "QuantizeLinear" and data.data_type == TensorProto.FLOAT:
            scale = inits.get(node.input[1])
            if scale is None:
                continue
            s = numpy_helper.to_array(scale).astype(np.float64)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if s.ndim == 1 and s.size > 1:
                shape = [1] * values.ndim
                shape[axis] = -1
                s = s.reshape(shape)
            with np.errstate(divide="ignore", invalid="ignore"):
                levels = np.where(s > 0, np.abs(values) / s, 0.0)
            level = int(np.rint(np.nanmax(levels, initial=0.0)))
        else:
            continue
        largest = level if largest is None else max(largest, level)
    return None if largest is None else (largest, uint8)


def saturation_caveat(
    model: str | os.PathLike[str], backend: str, device: str, *, saturates: bool | None = None
) -> str | None:
    """One line when ``backend`` on this CPU saturates ``model``'s int8 sums; None otherwise.

    ``saturates`` says whether the CPU adds u8 x s8 pairs in int16 (None: ask
    :func:`edgeres.sysinfo.int8_pairs_saturate` about this one).
    """
    from edgeres.sysinfo import int8_pairs_saturate

    path = Path(model)
    if backend not in SATURATING_BACKENDS or not str(device).lower().startswith("cpu"):
        return None
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return None
    if not (int8_pairs_saturate() if saturates is None else saturates):
        return None
    found = int8_weight_levels(path)
    if found is None:
        return None
    level, uint8 = found
    if level <= SAFE_LEVEL or (backend == "onnxruntime" and not uint8):
        return None
    return (
        f"this CPU has no VNNI: {backend}'s int8 kernels add pairs of products in 16 bits, which "
        "saturates with 8-bit weights, so INT8 accuracy here is below what the model computes on "
        "CPUs with VNNI; quantize with --weight-bits 7 for CPUs like this one"
    )
