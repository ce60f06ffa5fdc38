"""Float16 ONNX models, so that precision lives in the model, as TensorRT's strong typing wants.

TensorRT 11 dropped the FP16/INT8 builder flags: an engine computes in the types its
network declares. :func:`convert_fp16` rewrites a float32 model with onnxconverter-common's
float16 converter: weights and activations become float16, while the graph's input and
output stay float32 (``keep_io_types``) and numerically touchy ops (:data:`DEFAULT_FP32_OPS`)
keep float32 behind Cast nodes.

On an INT8 Q/DQ model (``edgeres quantize --target tensorrt``) the result is INT8 with
float16 for the layers left unquantized. Its Q/DQ scales become float16 too, consistently:
ONNX allows float16 scales from opset 19, so an older model is first raised to opset 19
with ONNX's version converter. Mixing float32 scales with float16 activations would need a
Cast around every Q/DQ pair, which hides the pattern TensorRT fuses into INT8 kernels.

Per-channel weight scales below float16's smallest normal number (2**-14, 6.1e-5) occur in
real networks (near-dead channels: 18 of 688 in one ResNet-20, down to 2e-9). Float16 holds
them only as subnormals, coarsely, and rounding to the nearest one can make a scale smaller,
so that the channel's largest weights no longer fit in int8 and are clipped, or zero, so that
the channel's weights divide by zero. Such a scale is first rounded *up* to the next float16
(at least 2**-24, float16's smallest subnormal); int8 weights stored as integers are re-rounded
to it. No weight is clipped then, and each moves by at most half its channel's float16 step,
so the float16 model computes what the float32 one does; the count is logged. Any other scale
that float16 cannot hold to 0.1% (an activation's) is reported as a warning.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgeres.atomic import atomic_path
from edgeres.errors import EdgeresError, MissingDependencyError, UsageError, first_line
from edgeres.export.onnx_meta import check_classifier, load_onnx
from edgeres.precision import PRECISIONS, QDQ_OPS
from edgeres.precision import onnx_precision as model_precision

__all__ = [
    "DEFAULT_FP32_OPS",
    "FP16_QDQ_OPSET",
    "PRECISIONS",
    "PRECISION_KEY",
    "convert_fp16",
    "model_precision",
]

log = logging.getLogger(__name__)

#: Ops kept in float32 unless told otherwise: reductions, normalizing exponentials, resampling.
DEFAULT_FP32_OPS: tuple[str, ...] = (
    "Softmax",
    "LogSoftmax",
    "ReduceMean",
    "ReduceSum",
    "ReduceL2",
    "ReduceLogSumExp",
    "Resize",
    "Upsample",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
)
#: The metadata key that records what a model computes in: one of :data:`PRECISIONS`.
PRECISION_KEY = "edgeres.precision"
#: The first opset whose QuantizeLinear/DequantizeLinear take float16 scales.
FP16_QDQ_OPSET = 19
_SCALE_TOLERANCE = 2.0**-10  # float16 keeps 10 mantissa bits: a normal scale stays within 0.1%
#: float16's smallest normal number: below it a scale loses precision, and below 6e-8 it is 0.
FP16_MIN_NORMAL = 2.0**-14
FP16_MIN_SUBNORMAL = 2.0**-24


def convert_fp16(
    onnx_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    op_block_list: Sequence[str] | None = None,
    node_block_list: Sequence[str] = (),
) -> Path:
    """Write a float16 copy of ``onnx_path`` (float32 or INT8 Q/DQ) to ``output``.

    ``op_block_list`` (default :data:`DEFAULT_FP32_OPS`) and ``node_block_list`` (node
    names) stay float32; onnxconverter-common's own list of ops without float16 kernels is
    always added. The graph's input and output stay float32, the metadata is kept and
    ``edgeres.precision`` added. The result passes ONNX's checker and is written atomically.
    """
    source, output = Path(onnx_path), Path(output)
    if output.is_dir():
        raise UsageError(f"'{output}' is a folder; give the .onnx file to write")
    if source.exists() and output.exists() and source.resolve() == output.resolve():
        raise UsageError(f"write the float16 model to a new file, not over '{source}'")
    converter = _converter()
    model = load_onnx(source, load_weights=True)
    check_classifier(model, source.name)
    before = model_precision(model)
    if "fp16" in before:
        raise UsageError(f"{source.name} is already float16 ({before}); give its float32 or INT8 Q/DQ model")
    names = {node.name for node in model.graph.node}
    unknown = [n for n in node_block_list if n not in names]
    if unknown:
        raise UsageError(f"node(s) to keep in float32 not found in {source.name}: {', '.join(unknown[:5])}")
    has_qdq = before == "int8"
    if has_qdq and _opset(model) < FP16_QDQ_OPSET:
        model = _raise_opset(model, source.name)
    if has_qdq:
        raised, smallest = round_up_tiny_weight_scales(model)
        if raised:
            log.info(
                "rounded %d per-channel weight scale(s) of %s below float16's normal range (smallest "
                "%.3g) up to the next float16, so no weight of theirs is clipped",
                raised, source.name, smallest,
            )  # fmt: skip
    scales = _qdq_scales(model) if has_qdq else {}
    blocked = list(
        dict.fromkeys(
            [
                *converter.DEFAULT_OP_BLOCK_LIST,
                *(DEFAULT_FP32_OPS if op_block_list is None else op_block_list),
            ]
        )
    )

    with atomic_path(output, suffix=".onnx.tmp") as tmp:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                converted = converter.convert_float_to_float16(
                    model,
                    # float16's smallest subnormal, not the converter's 1e-7: the rounded-up scales
                    # and the smallest weights keep their values
                    min_positive_val=FP16_MIN_SUBNORMAL,
                    keep_io_types=True,
                    op_block_list=blocked,
                    node_block_list=list(node_block_list),
                )
            except (ValueError, RuntimeError, onnx.shape_inference.InferenceError) as exc:
                raise EdgeresError(f"cannot convert {source.name} to float16: {first_line(exc)}") from exc
        clamped = [str(w.message) for w in caught if "truncated" in str(w.message)]
        if clamped:
            log.info(
                "%d float16 conversion(s) clamped out-of-range values, e.g. %s", len(clamped), clamped[0]
            )
        if scales:
            _check_scales(scales, _qdq_scales(converted), source.name)
        _set_prop(converted, PRECISION_KEY, model_precision(converted))
        try:
            onnx.checker.check_model(converted, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise EdgeresError(f"the float16 model failed ONNX's checker: {first_line(exc)}") from exc
        onnx.save_model(converted, str(tmp))
    return output


def _converter() -> Any:
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise MissingDependencyError(
            'float16 conversion needs onnxconverter-common: pip install "edgeres[tensorrt]" '
            "(or pip install onnxconverter-common)"
        ) from exc
    return float16


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _raise_opset(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    from onnx import version_converter

    try:
        raised = version_converter.convert_version(model, FP16_QDQ_OPSET)
    except Exception as exc:  # the converter raises RuntimeError or a bare C++ error type
        raise EdgeresError(
            f"float16 Q/DQ scales need opset {FP16_QDQ_OPSET}, and {name} (opset {_opset(model)}) "
            f"cannot be converted: {first_line(exc)}; "
            f"re-export with --opset {FP16_QDQ_OPSET} and quantize again"
        ) from exc
    log.info("raised %s from opset %d to %d for float16 Q/DQ scales", name, _opset(model), FP16_QDQ_OPSET)
    return raised


def round_up_tiny_weight_scales(model: onnx.ModelProto) -> tuple[int, float]:
    """Round weight scales below :data:`FP16_MIN_NORMAL` up to the next float16, in place.

    Returns how many changed and the smallest of them before. A float weight behind a
    QuantizeLinear (the tensorrt layout) is quantized with the new scale when the model runs; an
    int8 weight initializer behind a DequantizeLinear (the cpu layout) is re-rounded here. Only
    symmetric weights (zero point 0) are touched.
    """
    inits = {t.name: t for t in model.graph.initializer}
    raised, smallest = 0, np.inf
    done: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS or len(node.input) < 2 or node.input[1] in done:
            continue
        data, scale = inits.get(node.input[0]), inits.get(node.input[1])
        if data is None or scale is None or len(data.dims) < 2 or len(scale.dims) != 1:
            continue
        zero = inits.get(node.input[2]) if len(node.input) > 2 else None
        if zero is not None and np.any(numpy_helper.to_array(zero) != 0):
            continue
        s = numpy_helper.to_array(scale).astype(np.float32)
        half = s.astype(np.float16)
        up = np.where(half.astype(np.float32) < s, np.nextafter(half, np.float16(np.inf)), half)
        tiny = (s > 0) & (s < FP16_MIN_NORMAL) & (up.astype(np.float32) != s)
        if not tiny.any():
            continue
        new = np.where(tiny, up.astype(np.float32), s).astype(np.float32)
        if node.op_type == "DequantizeLinear" and data.data_type == onnx.TensorProto.INT8:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            q = numpy_helper.to_array(data).astype(np.float64)
            shape = [1] * q.ndim
            shape[axis] = -1
            requantized = np.clip(np.rint(q * (s / new).reshape(shape)), -127, 127).astype(np.int8)
            data.CopyFrom(numpy_helper.from_array(requantized, data.name))
        elif not (node.op_type == "QuantizeLinear" and data.data_type == onnx.TensorProto.FLOAT):
            continue
        smallest = min(smallest, float(s[tiny].min()))
        raised += int(tiny.sum())
        scale.CopyFrom(numpy_helper.from_array(new, scale.name))
        done.add(scale.name)
    return raised, smallest


def _qdq_scales(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Scale initializers of the Q/DQ nodes, as float64 arrays, by name."""
    wanted = {node.input[1] for node in model.graph.node if node.op_type in QDQ_OPS and len(node.input) > 1}
    return {
        t.name: numpy_helper.to_array(t).astype(np.float64)
        for t in model.graph.initializer
        if t.name in wanted
    }


def _check_scales(before: dict[str, np.ndarray], after: dict[str, np.ndarray], name: str) -> None:
    lost, total, smallest = 0, 0, np.inf
    for key, old in before.items():
        new = after.get(key)
        if new is None or new.shape != old.shape:
            continue
        total += old.size
        nonzero = old != 0
        rel = np.abs(new - old)[nonzero] / np.abs(old[nonzero])
        lost += int(np.count_nonzero(rel > _SCALE_TOLERANCE))
        if nonzero.any():
            smallest = min(smallest, float(np.abs(old[nonzero]).min()))
    if lost:
        log.warning(
            "%d of %d Q/DQ scales of %s change by more than 0.1%% in float16 (smallest %.3g); INT8 accuracy "
            "may drop: build without --fp16 to keep them float32",
            lost,
            total,
            name,
            smallest,
        )


def _set_prop(model: onnx.ModelProto, key: str, value: str) -> None:
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    for k, v in [*keep, (key, value)]:
        model.metadata_props.add(key=k, value=v)
