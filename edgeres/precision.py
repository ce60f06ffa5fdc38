"""What arithmetic a model file runs in: ``fp32``, ``fp16`` or ``int8``.

Read from the file itself, not its name:

* ONNX: ``int8`` when the graph holds QuantizeLinear/DequantizeLinear or QLinear* nodes
  (the Q/DQ models ``edgeres quantize`` writes), ``fp16`` when any tensor is float16
  (``edgeres convert-fp16``), ``int8+fp16`` for both;
* a TensorRT engine: the precision its sidecar records;
* PyTorch files: the dtype of their floating-point weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from edgeres.runners.registry import ENGINE_SUFFIXES

if TYPE_CHECKING:
    import onnx

__all__ = ["PRECISIONS", "QDQ_OPS", "model_precision", "onnx_precision"]

#: Every value :func:`model_precision` returns.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int8+fp16")
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def onnx_precision(model: onnx.ModelProto) -> str:
    """What a loaded ONNX model computes in, from its contents: fp32, fp16, int8 (Q/DQ) or int8+fp16."""
    from onnx import TensorProto

    graph = model.graph
    int8 = any(node.op_type in QDQ_OPS or node.op_type.startswith("QLinear") for node in graph.node)
    fp16 = (
        any(t.data_type == TensorProto.FLOAT16 for t in graph.initializer)
        or any(_is_fp16_node(node) for node in graph.node)
        or any(
            v.type.tensor_type.elem_type == TensorProto.FLOAT16
            for v in (*graph.input, *graph.output, *graph.value_info)
        )
    )
    if int8:
        return "int8+fp16" if fp16 else "int8"
    return "fp16" if fp16 else "fp32"


def _is_fp16_node(node: onnx.NodeProto) -> bool:
    from onnx import AttributeProto, TensorProto

    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT16:
            return True
        if attr.type == AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT16:
            return True
    return False


def model_precision(path: str | os.PathLike[str]) -> str:
    """``fp32``, ``fp16`` or ``int8`` for the model file at ``path`` (``fp32`` when unknown)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        import onnx

        return onnx_precision(onnx.load(str(p), load_external_data=False))
    if suffix in ENGINE_SUFFIXES:
        from edgeres.engine.sidecar import read_sidecar

        sidecar = read_sidecar(p)
        return sidecar.precision if sidecar is not None else "fp32"
    return _torch_precision(p)


def _torch_precision(path: Path) -> str:
    from edgeres.loading import load_model

    module = load_model(path).module
    if module is None:
        return "fp32"
    for param in module.parameters():
        if param.is_floating_point():
            return "fp16" if str(param.dtype) in ("torch.float16", "torch.bfloat16") else "fp32"
    return "fp32"
