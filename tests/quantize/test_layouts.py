"""The layout table itself, and the graph rules of :mod:`edgeres.quantize.layouts`, on hand-built graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.quantize.layouts import (
    LAYOUTS,
    count_quantized_nodes,
    default_cpu_op_types,
    layout_for,
    requantized_on_cpu,
)
from edgeres.quantize.qdq import conv_kernels, count_int8_kernels


def test_what_each_layout_records_in_the_model() -> None:
    """The ``layout`` entry of edgeres.quantization metadata, field by field."""
    assert LAYOUTS["tensorrt"].describe() == {
        "runtime": "tensorrt",
        "activations": "QInt8",
        "weights": "QInt8",
        "per_channel_weights": True,
        "activation_symmetric": True,
        "weight_symmetric": True,
        "op_types": ["Conv", "ConvTranspose", "Gemm", "MatMul"],
        "residual_add_inputs_only": True,
        "residual_sums_rounded_once": False,
        "weight_bits": 8,
    }
    assert LAYOUTS["cpu"].describe() == {
        "runtime": "onnxruntime",
        "activations": "QUInt8",
        "weights": "QInt8",
        "per_channel_weights": True,
        "activation_symmetric": False,
        "weight_symmetric": True,
        "op_types": list(default_cpu_op_types()),
        "residual_add_inputs_only": False,
        "residual_sums_rounded_once": False,
        "weight_bits": 8,
    }
    openvino = {**LAYOUTS["cpu"].describe(), "runtime": "openvino", "residual_sums_rounded_once": True}
    assert LAYOUTS["openvino"].describe() == openvino
    assert layout_for("openvino", 7).describe() == {**openvino, "weight_bits": 7}
    assert layout_for("cpu", 7).describe() == {**LAYOUTS["cpu"].describe(), "weight_bits": 7}
    assert layout_for("cpu", 7).reduce_range and not LAYOUTS["cpu"].reduce_range
    assert layout_for("tensorrt") is LAYOUTS["tensorrt"] and layout_for("cpu", 8) is LAYOUTS["cpu"]
    assert "Conv" in default_cpu_op_types() and "Add" in default_cpu_op_types()


def test_what_each_layout_hands_to_the_quantizer() -> None:
    assert LAYOUTS["cpu"].quantizer_options() == {"ActivationSymmetric": False, "WeightSymmetric": True}
    trt = LAYOUTS["tensorrt"].quantizer_options()
    assert trt == {
        "WeightSymmetric": True,
        "AddQDQPairToWeight": True,
        "QuantizeBias": False,
        "DedicatedQDQPair": False,
        "OpTypesToExcludeOutputQuantization": ["Conv", "ConvTranspose", "Gemm", "MatMul"],
        "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
        "ActivationSymmetric": True,
    }
    trt["WeightSymmetric"] = False  # a copy: the table is not changed through it
    assert LAYOUTS["tensorrt"].quantizer_options()["WeightSymmetric"] is True


def _graph(chain: list[str], *, scale_shape: tuple[int, ...] = (), op: str = "Conv", branch: str = ""):
    """x_q -> DequantizeLinear(scale of ``scale_shape``) -> ``op`` (float weights) -> chain -> ...

    ``chain`` names the ops after the conv, ending where the graph output is; ``branch`` ("conv"
    or the index of a chain op) gives that node's output a second consumer.
    """
    init = [
        numpy_helper.from_array(np.ones(scale_shape, np.float32), "s"),
        numpy_helper.from_array(np.zeros(scale_shape, np.uint8), "z"),
        numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w"),
        numpy_helper.from_array(np.ones((), np.float32), "qs"),
        numpy_helper.from_array(np.zeros((), np.uint8), "qz"),
    ]
    nodes = [helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["x"], name="dq")]
    nodes.append(helper.make_node(op, ["x", "w"], ["c"], name="conv"))
    last = "c"
    for i, kind in enumerate(chain):
        inputs = [last, "qs", "qz"] if kind in ("QuantizeLinear",) else [last]
        if kind == "Add":
            inputs = [last, last]
        nodes.append(helper.make_node(kind, inputs, [f"o{i}"], name=f"n{i}"))
        last = f"o{i}"
    outputs = [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)]
    if branch:
        tapped = "c" if branch == "conv" else f"o{branch}"
        nodes.append(helper.make_node("Identity", [tapped], ["tap"], name="tap"))
        outputs.append(helper.make_tensor_value_info("tap", TensorProto.FLOAT, None))
    inputs = [helper.make_tensor_value_info("xq", TensorProto.UINT8, None)]
    return helper.make_graph(nodes, "g", inputs, outputs, init)


@pytest.mark.parametrize(
    ("chain", "kwargs", "found"),
    [
        (["QuantizeLinear"], {}, True),
        (["Relu", "QuantizeLinear"], {}, True),
        (["Clip", "QuantizeLinear"], {}, True),
        (["Relu", "Clip", "QuantizeLinear"], {}, True),
        (["Relu", "QuantizeLinear"], {"scale_shape": (1,)}, True),  # a one-element scale is per tensor
        (["Relu", "QuantizeLinear"], {"op": "Gemm"}, True),
        (["Relu", "QuantizeLinear"], {"op": "ConvTranspose"}, True),
        (["Relu", "QuantizeLinear"], {"op": "MatMul"}, False),  # not one the pass rewrites
        (["Relu", "QuantizeLinear"], {"scale_shape": (3,)}, False),  # per-channel input
        (["Add", "QuantizeLinear"], {}, False),  # not a ReLU or Clip on the way
        (["Relu"], {}, False),  # never reaches a QuantizeLinear
        ([], {}, False),
        (["Relu", "QuantizeLinear"], {"branch": "conv"}, False),  # the conv's output is also used float
        (["Relu", "QuantizeLinear"], {"branch": "0"}, False),  # so is the ReLU's
    ],
)
def test_which_float_convs_ort_quantizes_by_itself(chain: list[str], kwargs: dict, found: bool) -> None:
    graph = _graph(chain, **kwargs)
    assert requantized_on_cpu(graph, ["conv"]) == (["conv"] if found else [])
    assert requantized_on_cpu(graph, ["other"]) == []  # only among the nodes asked about


def test_a_conv_reading_the_model_input_is_not_requantized() -> None:
    graph = _graph(["Relu", "QuantizeLinear"])
    graph.node[1].input[0] = "xq"  # reads the graph input, no DequantizeLinear before it
    assert requantized_on_cpu(graph, ["conv"]) == []


def test_quantized_nodes_read_both_data_and_weight_from_dequantize() -> None:
    graph = _graph(["Relu"])
    assert count_quantized_nodes(graph) == 0  # float weights
    graph.node.append(helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"], name="wdq"))
    graph.node[1].input[1] = "wd"
    assert count_quantized_nodes(graph) == 1
    graph.node[1].op_type = "Relu"  # not a weighted op
    assert count_quantized_nodes(graph) == 0
    graph.node[1].op_type = "MatMul"
    assert count_quantized_nodes(graph) == 1
    del graph.node[1].input[1]  # one input only
    assert count_quantized_nodes(graph) == 0


@pytest.mark.parametrize(
    ("zero_point", "activation"),
    [(True, "Relu"), (False, "Relu"), (True, "Sigmoid"), (False, "Sigmoid")],
)
def test_the_requantize_rule_agrees_with_onnxruntime(
    tmp_path: Path, zero_point: bool, activation: str
) -> None:
    """Checked against ORT itself: a DequantizeLinear without a zero point (allowed, 0 implied) is
    still per tensor, and a Sigmoid on the way to the QuantizeLinear keeps the conv in float."""
    init = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.random.default_rng(0).random((4, 3, 1, 1), np.float32), "w"),
        numpy_helper.from_array(np.array(0.05, np.float32), "qs"),
        numpy_helper.from_array(np.array(0, np.uint8), "qz"),
    ]
    if zero_point:
        init.append(numpy_helper.from_array(np.array(0, np.uint8), "z"))
    nodes = [
        helper.make_node(
            "DequantizeLinear", ["xq", "s", "z"] if zero_point else ["xq", "s"], ["x"], name="dq"
        ),
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node(activation, ["c"], ["r"], name="act"),
        helper.make_node("QuantizeLinear", ["r", "qs", "qz"], ["rq"], name="q"),
        helper.make_node("DequantizeLinear", ["rq", "qs", "qz"], ["y"], name="dq2"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("xq", TensorProto.UINT8, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])],
        init,
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    int8, _ = conv_kernels(count_int8_kernels(path))
    assert int8 == (1 if activation == "Relu" else 0)  # what ORT's CPU provider does
    assert requantized_on_cpu(graph, ["conv"]) == (["conv"] if int8 else [])
