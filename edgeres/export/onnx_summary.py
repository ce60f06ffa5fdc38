"""What an ONNX file is, as ``edgeres inspect`` shows it (the way Polygraphy's ``inspect model`` does).

Its inputs and outputs (names, element types, shapes), opset, precision (fp32, fp16, int8
Q/DQ), the Q/DQ layout edgeres wrote (``tensorrt`` or ``cpu``, from the
``edgeres.quantization`` metadata; ``unknown`` for a Q/DQ model from elsewhere), node counts
and every stored ``metadata_props`` entry. Reads the graph only, never the weights' data.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

__all__ = ["format_onnx_summary", "onnx_summary"]

_QUANT_KEY = "edgeres.quantization"  # edgeres.quantize.qdq.QUANT_META_KEY, without importing onnxruntime


def onnx_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Plain data about the ONNX file at ``path`` (see the module docstring)."""
    import onnx

    from edgeres.export.onnx_meta import graph_inputs, load_onnx, value_dims
    from edgeres.precision import QDQ_OPS, onnx_precision

    model = load_onnx(path)

    def tensors(values: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": v.name,
                "dtype": onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower(),
                "shape": value_dims(v),
            }
            for v in values
        ]

    ops = Counter(node.op_type for node in model.graph.node)
    props = {p.key: p.value for p in model.metadata_props}
    precision = onnx_precision(model)
    layout = None
    if precision.startswith("int8"):
        layout = _layout(props.get(_QUANT_KEY))
    return {
        "inputs": tensors(graph_inputs(model)),
        "outputs": tensors(model.graph.output),
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "ir_version": model.ir_version,
        "producer": " ".join(p for p in (model.producer_name, model.producer_version) if p) or None,
        "precision": precision,
        "qdq_layout": layout,
        "num_nodes": len(model.graph.node),
        "num_qdq_nodes": sum(n for op, n in ops.items() if op in QDQ_OPS),
        "num_initializers": len(model.graph.initializer),
        "metadata": props,
    }


def _layout(info: str | None) -> str:
    """The layout named in ``edgeres.quantization``, else ``unknown``."""
    try:
        target = json.loads(info)["target"] if info else None
    except (ValueError, KeyError, TypeError):
        target = None
    return str(target) if target else "unknown"


def _shape(dims: list[int | str | None] | None) -> str:
    return "?" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _short(value: str, limit: int = 100) -> str:
    one_line = " ".join(value.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def format_onnx_summary(summary: dict[str, Any]) -> list[str]:
    """The text lines of :func:`onnx_summary`'s data, aligned as ``edgeres inspect`` prints them."""
    lines = []
    for kind in ("inputs", "outputs"):
        for t in summary[kind]:
            lines.append(f"{kind:<13}{t['name']}: {t['dtype']} {_shape(t['shape'])}")
    precision = summary["precision"]
    if summary["qdq_layout"] is not None:
        precision += f" (Q/DQ, {summary['num_qdq_nodes']} Q/DQ nodes, layout {summary['qdq_layout']})"
    lines.append(f"{'opset':<13}{summary['opset']} (IR version {summary['ir_version']})")
    lines.append(f"{'precision':<13}{precision}")
    lines.append(f"{'nodes':<13}{summary['num_nodes']}, {summary['num_initializers']} initializers")
    if summary["producer"]:
        lines.append(f"{'producer':<13}{summary['producer']}")
    metadata = summary["metadata"]
    lines.append(f"{'metadata':<13}{len(metadata)} entries" + (":" if metadata else ""))
    lines.extend(f"  {key}: {_short(value)}" for key, value in metadata.items())
    return lines
