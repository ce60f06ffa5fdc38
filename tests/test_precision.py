"""What a model file computes in, read from its contents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.precision import model_precision, onnx_precision


def _conv_model(dtype: int, qdq: bool = False) -> onnx.ModelProto:
    np_type = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np_type), "w")
    nodes = []
    x = "x"
    if qdq:
        scale = numpy_helper.from_array(np.array(0.1, np_type), "s")
        zero = numpy_helper.from_array(np.array(0, np.int8), "z")
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        ]
        x = "xd"
    nodes.append(helper.make_node("Conv", [x, "w"], ["y"]))
    inits = [w] + ([scale, zero] if qdq else [])
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", dtype, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", dtype, [1, 2, 4, 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize(
    ("dtype", "qdq", "expected"),
    [
        (TensorProto.FLOAT, False, "fp32"),
        (TensorProto.FLOAT16, False, "fp16"),
        (TensorProto.FLOAT, True, "int8"),
        (TensorProto.FLOAT16, True, "int8+fp16"),
    ],
)
def test_onnx_precision_from_contents(dtype: int, qdq: bool, expected: str, tmp_path: Path) -> None:
    model = _conv_model(dtype, qdq)
    onnx.checker.check_model(model)
    assert onnx_precision(model) == expected
    path = tmp_path / "m.onnx"  # the name says nothing: the contents decide
    onnx.save(model, str(path))
    assert model_precision(path) == expected


def test_torch_checkpoint_is_fp32(resnet20_checkpoint: Path) -> None:
    assert model_precision(resnet20_checkpoint) == "fp32"
