"""Rewrites of the quantizer's Q/DQ graph: float logits, and residual sums rounded once for OpenVINO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.quantize.layouts import ResidualAdd, residual_adds
from edgeres.quantize.qdq import write_qdq
from edgeres.quantize.qdq_passes import float_outputs, sums_rounded_once
from edgeres.quantize.ranges import Ranges
from edgeres.runners import OnnxRuntimeRunner
from tests.quantize.test_qdq import _batches, fp32, ranges  # noqa: F401  (fixtures)


def _qdq_graph(extra_consumer: bool) -> onnx.GraphProto:
    """x -> Relu -> Q -> DQ -> y, and optionally a second use of the Relu's output."""
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    z = numpy_helper.from_array(np.array(0, np.uint8), "z")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"], name="q"),
        helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["y"], name="dq"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    if extra_consumer:
        nodes.append(helper.make_node("Neg", ["r"], ["n"], name="neg"))
        outputs.append(helper.make_tensor_value_info("n", TensorProto.FLOAT, [1, 4]))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
    return helper.make_graph(nodes, "g", inputs, outputs, [s, z])


@pytest.mark.parametrize("extra_consumer", [False, True], ids=["alone", "branched"])
def test_an_output_loses_its_qdq_pair_and_other_readers_follow(extra_consumer: bool) -> None:
    graph = _qdq_graph(extra_consumer)
    assert float_outputs(graph) == ["y"]
    ops = {n.name: n for n in graph.node}
    assert "q" not in ops and "dq" not in ops
    assert list(ops["relu"].output) == ["y"]
    if extra_consumer:
        assert list(ops["neg"].input) == ["y"]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    import onnxruntime as ort

    x = np.array([[-1.0, 0.04, 0.26, 3.0]], np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(["y"], {"x": x})[0], np.maximum(x, 0))


def test_a_qdq_pair_on_a_graph_input_or_a_read_output_stays() -> None:
    graph = _qdq_graph(False)
    graph.node.remove(graph.node[0])  # Q reads the graph input itself
    for node in graph.node:
        node.input[:] = ["x" if name == "r" else name for name in node.input]
    assert float_outputs(graph) == []
    graph = _qdq_graph(False)
    graph.node.append(helper.make_node("Neg", ["y"], ["n"], name="neg"))  # y is read as well
    graph.output.append(helper.make_tensor_value_info("n", TensorProto.FLOAT, [1, 4]))
    assert float_outputs(graph) == []
    assert [n.name for n in graph.node] == ["relu", "q", "dq", "neg"]


def _sum_graph(branch: str | None) -> onnx.GraphProto:
    """x -> Conv -> Q -> DQ -> Add(., x) -> y; ``branch`` names a tensor read by one more node."""
    w = numpy_helper.from_array(np.eye(2, dtype=np.float32).reshape(2, 2, 1, 1), "w")
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    z = numpy_helper.from_array(np.array(0, np.uint8), "z")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"], name="q"),
        helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["cd"], name="dq"),
        helper.make_node("Add", ["cd", "x"], ["y"], name="add"),
    ]
    shape = [1, 2, 2, 2]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)]
    if branch is not None:
        nodes.append(helper.make_node("Neg", [branch], ["n"], name="neg"))
        outputs.append(helper.make_tensor_value_info("n", TensorProto.FLOAT, shape))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    return helper.make_graph(nodes, "g", inputs, outputs, [w, s, z])


SUM = ResidualAdd(add="add", main="c", residual="x", conv="conv")


def test_a_sum_loses_the_rounding_of_its_convolution() -> None:
    graph = _sum_graph(None)
    assert sums_rounded_once(graph, [SUM]) == ["add"]
    ops = {n.name: n for n in graph.node}
    assert "q" not in ops and "dq" not in ops and list(ops["add"].input) == ["c", "x"]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    import onnxruntime as ort

    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2) / 7 - 0.5
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["y"], {"x": x})[0], 2 * x, rtol=1e-6)


@pytest.mark.parametrize("branch", ["c", "cd", "cq"], ids=["conv-output", "dequantized", "quantized"])
def test_a_rounding_someone_else_reads_stays(branch: str) -> None:
    graph = _sum_graph(branch)
    assert sums_rounded_once(graph, [SUM]) == []
    assert [n.name for n in graph.node] == ["conv", "q", "dq", "add", "neg"]


def test_a_sum_whose_main_input_is_not_its_convolution_stays() -> None:
    graph = _sum_graph(None)
    assert sums_rounded_once(graph, [ResidualAdd("add", "c", "x", conv="other")]) == []
    assert sums_rounded_once(graph, [ResidualAdd("missing", "c", "x", conv="conv")]) == []
    assert len(graph.node) == 4


def _reads(path: Path) -> tuple[dict[str, list[str]], dict[str, onnx.NodeProto]]:
    graph = onnx.load(str(path)).graph
    producer = {out: n for n in graph.node for out in n.output}
    adds = {n.name: [producer[i].op_type for i in n.input] for n in graph.node if n.op_type == "Add"}
    return adds, producer


def test_the_openvino_layout_adds_each_convolution_unrounded(
    fp32: Path,  # noqa: F811
    ranges: Ranges,  # noqa: F811
) -> None:
    sums = residual_adds(onnx.load(str(fp32)).graph)
    assert len(sums) == 9
    files = {
        t: write_qdq(fp32, ranges, t, fp32.with_name(f"sums.{t}.onnx")).path for t in ("cpu", "openvino")
    }
    cpu, _ = _reads(files["cpu"])
    ov, producer = _reads(files["openvino"])
    assert all(ops == ["DequantizeLinear", "DequantizeLinear"] for ops in cpu.values())
    for add in sums:  # main branch straight from its conv; the residual still through its Q/DQ
        assert sorted(ov[add.add]) == ["Conv", "DequantizeLinear"], add.add
    model = onnx.load(str(files["openvino"]))
    for node in model.graph.node:
        if node.op_type == "Conv":  # every conv still reads int8 data and weights
            assert [producer[i].op_type for i in node.input[:2]] == ["DequantizeLinear"] * 2
    onnx.checker.check_model(model, full_check=True)


def test_openvino_computes_the_openvino_layout_as_written(
    fp32: Path,  # noqa: F811
    ranges: Ranges,  # noqa: F811
) -> None:
    """ORT running each file's graph as written, against OpenVINO running the same file: the cpu
    file's sums differ by OpenVINO's one rounding where the file says two; the openvino file's do not."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed")
    from edgeres.runners.openvino_runner import OpenVinoRunner
    from edgeres.sysinfo import int8_pairs_saturate

    if int8_pairs_saturate():
        pytest.skip("this CPU has no VNNI: OpenVINO's int8 pair sums saturate, which is not the rounding")
    (x,) = _batches(1, seed=7)
    gap = {}
    for target in ("cpu", "openvino"):
        path = write_qdq(fp32, ranges, target, fp32.with_name(f"as-written.{target}.onnx")).path
        with OnnxRuntimeRunner(path, threads=2, optimize=False) as on_ort:
            as_written = on_ort.infer(x)
        with OpenVinoRunner(path, threads=2) as on_ov:
            gap[target] = float(np.abs(as_written - on_ov.infer(x)).mean())
    assert gap["openvino"] < 0.6 * gap["cpu"], gap
