"""Write an INT8 Q/DQ ONNX model from calibrated ranges, for TensorRT or for ONNX Runtime on CPU.

The ranges go straight into ONNX Runtime's ``QDQQuantizer`` (as the ``TensorsData`` its
calibrators produce); ONNX Runtime places the Q/DQ pairs by the target's
:class:`~edgeres.quantize.layouts.QdqLayout`. The fp32 model first gets ONNX Runtime's
quantization pre-processing (shape inference, constant folding, Identity removal), as its
documentation asks, so every conv bias is an initializer.

:func:`count_int8_kernels` shows what a model really runs as on ONNX Runtime's CPU provider:
the op types of the graph after all of ORT's optimizations (QLinearConv is an int8 conv,
Conv/FusedConv a float one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeres.atomic import atomic_path
from edgeres.errors import EdgeresError, UsageError, first_line
from edgeres.quantize.layouts import (
    QdqLayout,
    Target,
    count_quantized_nodes,
    layout_for,
    requantized_on_cpu,
    residual_adds,
)
from edgeres.quantize.qdq_passes import float_outputs, sums_rounded_once
from edgeres.quantize.ranges import Ranges
from edgeres.quantize.targets import WeightBits

__all__ = [
    "FLOAT_CONV_OPS",
    "INT8_CONV_OPS",
    "QUANT_META_KEY",
    "QdqResult",
    "conv_kernels",
    "count_int8_kernels",
    "prepare_onnx",
    "write_qdq",
    "write_qdq_layout",
]

log = logging.getLogger(__name__)

QUANT_META_KEY = "edgeres.quantization"
#: Op types (after ORT's CPU graph optimization) that run a conv or matrix product in int8 ...
INT8_CONV_OPS: frozenset[str] = frozenset(
    {"QLinearConv", "ConvInteger", "QGemm", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat"}
)
#: ... and those that run one in float.
FLOAT_CONV_OPS: frozenset[str] = frozenset(
    {"Conv", "FusedConv", "NhwcFusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}
)
_ORT_PROPS = ("onnx.infer", "onnx.quant.pre_process")  # bookkeeping keys ONNX Runtime's tools add
#: ONNX Runtime's message: "... are not specified for param NAME. In static mode ..."
_MISSING = re.compile(r"not specified for param (.+?)\. ")


@dataclass(frozen=True)
class QdqResult:
    """What :func:`write_qdq` wrote."""

    path: Path
    target: str
    #: Conv/Gemm/MatMul nodes whose data and weight inputs come through Q/DQ.
    num_quantized_nodes: int
    excluded_nodes: tuple[str, ...]
    size_bytes: int

    def summary(self) -> str:
        excluded = f", {len(self.excluded_nodes)} kept in float" if self.excluded_nodes else ""
        return (
            f"{self.path} ({self.target} Q/DQ layout, {self.num_quantized_nodes} weighted ops in int8"
            f"{excluded}, {self.size_bytes / 1e6:.1f} MB)"
        )


def write_qdq(
    fp32_onnx: str | os.PathLike[str],
    ranges: Ranges,
    target: Target,
    output: str | os.PathLike[str],
    *,
    exclude_nodes: Sequence[str] = (),
    calibration: Mapping[str, Any] | None = None,
    weight_bits: WeightBits = 8,
) -> QdqResult:
    """Quantize ``fp32_onnx`` with ``ranges`` into ``output`` in ``target``'s Q/DQ layout.

    ``target`` is "tensorrt" (explicit quantization for TensorRT) or "cpu" (ONNX Runtime's
    int8 CPU kernels). ``exclude_nodes`` (node names) get no Q/DQ of their own and keep float
    weights, as ONNX Runtime's ``nodes_to_exclude``; on ORT's CPU provider a float Conv read
    from a DequantizeLinear and feeding a QuantizeLinear is quantized again at load time (see
    :func:`~edgeres.quantize.layouts.requantized_on_cpu`; a warning names them). ``calibration`` (e.g.
    ``{"method": "percentile", "images": 512}``) is recorded in the model's
    ``edgeres.quantization`` metadata. ``weight_bits`` 7 gives the cpu layout 7-bit weights (see
    :data:`~edgeres.quantize.targets.WeightBits`). The file is checked and written atomically.
    """
    return write_qdq_layout(
        fp32_onnx,
        ranges,
        layout_for(target, weight_bits),
        output,
        exclude_nodes=exclude_nodes,
        calibration=calibration,
    )


@contextlib.contextmanager
def _root_logging_untouched() -> Iterator[None]:
    """Undo what ONNX Runtime's quantizer does to the root logger.

    It logs with ``logging.info(...)``, which installs a root handler (``logging.basicConfig``)
    when there is none; every later edgeres log line would then print twice.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)


def write_qdq_layout(
    fp32_onnx: str | os.PathLike[str],
    ranges: Ranges,
    layout: QdqLayout,
    output: str | os.PathLike[str],
    *,
    exclude_nodes: Sequence[str] = (),
    calibration: Mapping[str, Any] | None = None,
) -> QdqResult:
    """:func:`write_qdq` with any :class:`QdqLayout` (for experiments with other layouts)."""
    source, output = Path(fp32_onnx), Path(output)
    if not source.is_file():
        raise UsageError(f"ONNX model '{source}' does not exist")
    if output.is_dir():
        raise UsageError(f"'{output}' is a folder; give the .onnx file to write")
    if not ranges:
        raise UsageError("no calibrated ranges given; calibrate the model first")
    with atomic_path(output, suffix=".onnx.tmp") as tmp:
        with _root_logging_untouched():
            model = _quantize(source, ranges, layout, tuple(exclude_nodes))
        original = onnx.load(str(source), load_external_data=False)
        excluded = tuple(dict.fromkeys(exclude_nodes))
        num_quantized = count_quantized_nodes(model.graph)
        requantized = requantized_on_cpu(model.graph, excluded) if layout.runtime == "onnxruntime" else []
        if requantized:
            log.warning(
                "ONNX Runtime's CPU optimizer (WeightBiasQuantization) will run %s in int8 after all: "
                "each sits between DequantizeLinear and QuantizeLinear; create the session with "
                "disabled_optimizers=['WeightBiasQuantization'] to keep it in float",
                ", ".join(requantized),
            )
        info: dict[str, Any] = {
            "target": layout.name,
            "method": (calibration or {}).get("method"),
            "layout": layout.describe(),
            "num_quantized_nodes": num_quantized,
            "excluded_nodes": list(excluded),
            "num_ranges": len(ranges),
            "onnxruntime": _ort_version(),
        }
        if calibration:
            info["calibration"] = dict(calibration)
        _set_props(model, original, json.dumps(info, sort_keys=True, default=str))
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise EdgeresError(f"the quantized model failed ONNX's checker: {first_line(exc)}") from exc
        onnx.save_model(model, str(tmp))
    return QdqResult(output, layout.name, num_quantized, excluded, output.stat().st_size)


def prepare_onnx(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """``source`` after ONNX Runtime's quantization pre-processing, written to ``output``.

    This is the float model that :func:`write_qdq` really quantizes: BatchNormalization folded
    into the Conv before it, constants folded, Identity nodes gone, node names kept. Whatever
    compares float weights with the written int8 ones (bias correction, learned rounding) reads
    them from this model, not from ``source``, whose convs may still precede a BatchNormalization.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, output = Path(source), Path(output)
    try:
        with _root_logging_untouched():
            quant_pre_process(str(source), str(output), skip_symbolic_shape=True)
    except Exception as exc:  # onnx/ORT raise many types for a damaged model
        raise EdgeresError(f"cannot prepare '{source}' for quantization: {first_line(exc)}") from exc
    return output


def _quantize(source: Path, ranges: Ranges, layout: QdqLayout, exclude: tuple[str, ...]) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer, update_opset_version

    with tempfile.TemporaryDirectory(prefix="edgeres-qdq-") as tmp_dir:
        prepared = prepare_onnx(source, Path(tmp_dir) / "prepared.onnx")
        try:
            model = load_model_with_shape_infer(prepared)
        except Exception as exc:  # onnx/ORT raise many types for a damaged model
            raise EdgeresError(f"cannot prepare '{source}' for quantization: {first_line(exc)}") from exc
    names = {node.name for node in model.graph.node}
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise UsageError(
            f"node(s) to keep in float not found in {source.name}: {', '.join(unknown[:5])}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        )
    activation, weight = QuantType[layout.activation_type], QuantType[layout.weight_type]
    model = update_opset_version(model, weight, activation)
    data = {
        r.name: TensorData(lowest=np.array(r.lo, np.float32), highest=np.array(r.hi, np.float32))
        for r in ranges.values()
    }
    quantizer = QDQQuantizer(
        model,
        layout.per_channel,
        layout.reduce_range,
        weight,
        activation,
        TensorsData(CalibrationMethod.MinMax, data),
        [],
        list(exclude),
        list(layout.resolved_op_types()),
        layout.quantizer_options(),
    )
    adds = residual_adds(model.graph) if layout.residual_only_adds or layout.fused_sums else []
    if layout.residual_only_adds:
        for add in adds:
            if add.add not in exclude and add.conv not in exclude:
                quantizer.quantize_activation_tensor(add.residual)
    try:
        quantizer.quantize_model()
    except ValueError as exc:
        missing = _MISSING.search(str(exc))
        if missing is None:
            raise
        raise EdgeresError(
            f"no calibrated range for tensor '{missing.group(1)}' of {source.name}, which the "
            f"{layout.name} layout quantizes; calibrate this model (with {len(ranges)} ranges given, "
            "the calibration may be of another model)"
        ) from exc
    quantizer.model.topological_sort()
    result: onnx.ModelProto = quantizer.model.model
    float_outputs(result.graph)
    if layout.fused_sums:
        sums_rounded_once(result.graph, [a for a in adds if a.add not in exclude and a.conv not in exclude])
    return result


def _set_props(model: onnx.ModelProto, original: onnx.ModelProto, info: str) -> None:
    """The fp32 model's metadata (edgeres.meta etc.) plus ``edgeres.quantization``; ORT's bookkeeping goes."""
    props = [(p.key, p.value) for p in original.metadata_props if p.key not in (QUANT_META_KEY, *_ORT_PROPS)]
    del model.metadata_props[:]
    for key, value in [*props, (QUANT_META_KEY, info)]:
        model.metadata_props.add(key=key, value=value)
    model.doc_string = original.doc_string


def count_int8_kernels(
    onnx_path: str | os.PathLike[str], *, disabled_optimizers: Sequence[str] = ()
) -> dict[str, int]:
    """Op types, with counts, of ``onnx_path`` as ONNX Runtime's CPU provider runs it (all optimizations).

    See :data:`INT8_CONV_OPS` and :data:`FLOAT_CONV_OPS`, or :func:`conv_kernels`, for which
    op types are int8 and float convolutions. ``disabled_optimizers`` are ORT graph
    transformers to leave out, as in ``InferenceSession(..., disabled_optimizers=...)``.
    """
    import onnxruntime as ort

    path = Path(onnx_path)
    if not path.is_file():
        raise UsageError(f"ONNX model '{path}' does not exist")
    with tempfile.TemporaryDirectory(prefix="edgeres-ort-opt-") as tmp_dir:
        optimized = Path(tmp_dir) / "optimized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(optimized)
        options.log_severity_level = 3
        try:
            ort.InferenceSession(
                str(path),
                sess_options=options,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=list(disabled_optimizers),
            )
        except Exception as exc:
            raise EdgeresError(f"ONNX Runtime cannot load '{path}': {first_line(exc)}") from exc
        graph = onnx.load(str(optimized), load_external_data=False).graph
    return dict(Counter(node.op_type for node in graph.node))


def conv_kernels(counts: Mapping[str, int]) -> tuple[int, int]:
    """(int8, float) convolution and matrix-product kernels in :func:`count_int8_kernels`' counts."""
    int8 = sum(n for op, n in counts.items() if op in INT8_CONV_OPS)
    return int8, sum(n for op, n in counts.items() if op in FLOAT_CONV_OPS)


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)
