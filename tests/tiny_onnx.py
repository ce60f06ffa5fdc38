"""A tiny hand-built ONNX classifier, (N, 3, 8, 8) -> (N, 4): an FP32, Q/DQ or FP16 file, fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_classifier(
    path: Path, *, qdq: bool = False, fp16: bool = False, props: dict[str, str] | None = None
) -> Path:
    """A tiny classifier (N, 3, 8, 8) -> (N, 4): FP32, with Q/DQ on its input, or with an FP16 weight."""
    dtype = np.float16 if fp16 else np.float32
    inits = [numpy_helper.from_array(np.zeros((3 * 8 * 8, 4), dtype), "w")]
    nodes = [helper.make_node("Flatten", ["x" if qdq else "input"], ["flat"])]
    if fp16:
        nodes += [
            helper.make_node("Cast", ["flat"], ["flat16"], to=TensorProto.FLOAT16),
            helper.make_node("MatMul", ["flat16", "w"], ["l16"]),
            helper.make_node("Cast", ["l16"], ["logits"], to=TensorProto.FLOAT),
        ]
    else:
        nodes.append(helper.make_node("MatMul", ["flat", "w"], ["logits"]))
    if qdq:
        inits += [
            numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
            numpy_helper.from_array(np.array(0, np.int8), "zero"),
        ]
        nodes[:0] = [
            helper.make_node("QuantizeLinear", ["input", "scale", "zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["x"]),
        ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    for key, value in (props or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path
