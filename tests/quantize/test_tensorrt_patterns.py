"""The tensorrt layout on the graph shapes that decide it: which Adds are residual, one Q/DQ per tensor.

Each graph here is built by hand (onnx.helper) in the shape that matters, so the rule under test
is the only thing that can make the answer right or wrong.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgeres.export.fold import randomize_batchnorm
from edgeres.export.onnx_export import export_onnx
from edgeres.metadata import ModelMeta, Preprocessing
from edgeres.models import get_model
from edgeres.quantize.collect import collect_ranges
from edgeres.quantize.layouts import LAYOUTS, residual_adds
from edgeres.quantize.qdq import write_qdq
from edgeres.quantize.settings import CalibrationSettings


def _graph(nodes: list[onnx.NodeProto], output: str) -> onnx.GraphProto:
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    bn = [
        numpy_helper.from_array(np.full(4, v, np.float32), n)
        for n, v in (("s", 1), ("b", 0), ("m", 0), ("v", 1))
    ]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 2, 2]) for n in ("x", output)]
    return helper.make_graph(nodes, "g", [vi[0]], [vi[1]], [w, *bn])


def test_a_convnext_style_bypass_is_not_a_residual_add() -> None:
    """Add(conv output, f(conv output)): both sides come from one conv, so TensorRT fuses nothing."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv"),
        helper.make_node("Relu", ["c"], ["r"], "relu"),
        helper.make_node("Mul", ["r", "r"], ["scaled"], "mul"),
        helper.make_node("Add", ["c", "scaled"], ["out"], "bypass_add"),
    ]
    assert residual_adds(_graph(nodes, "out")) == []
    # the same bypass, the two inputs the other way round
    nodes[-1] = helper.make_node("Add", ["scaled", "c"], ["out"], "bypass_add")
    assert residual_adds(_graph(nodes, "out")) == []


def test_a_batchnorm_between_the_conv_and_its_add_is_part_of_the_main_branch() -> None:
    """Conv -> BatchNormalization -> Add(., skip): the conv absorbs the add; the skip is the residual."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c0"], "conv0"),
        helper.make_node("Relu", ["c0"], ["skip"], "relu0"),
        helper.make_node("Conv", ["skip", "w"], ["c1"], "conv1"),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn1"], "bn1"),
        helper.make_node("Add", ["skip", "bn1"], ["out"], "add"),
    ]
    (found,) = residual_adds(_graph(nodes, "out"))
    assert (found.add, found.main, found.residual, found.conv) == ("add", "bn1", "skip", "conv1")


def test_a_relu_after_the_batchnorm_still_leads_back_to_the_conv() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c0"], "conv0"),
        helper.make_node("Relu", ["c0"], ["skip"], "relu0"),
        helper.make_node("Conv", ["skip", "w"], ["c1"], "conv1"),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn1"], "bn1"),
        helper.make_node("Relu", ["bn1"], ["r1"], "relu1"),
        helper.make_node("Add", ["r1", "skip"], ["out"], "add"),
    ]
    (found,) = residual_adds(_graph(nodes, "out"))
    assert (found.main, found.residual, found.conv) == ("r1", "skip", "conv1")


@pytest.fixture(scope="module")
def tensorrt_model(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    torch.manual_seed(0)
    net = get_model("resnet20", num_classes=10)
    randomize_batchnorm(net)
    meta = ModelMeta(arch="resnet20", num_classes=10, preprocessing=Preprocessing(input_size=(32, 32)))
    folder = tmp_path_factory.mktemp("trt-patterns")
    fp32 = export_onnx(net.eval(), meta, folder / "r20.onnx", exporter="torchscript", verify=False).path

    class Reader:
        def __init__(self) -> None:
            self.batch: np.ndarray | None = np.random.default_rng(0).standard_normal(
                (8, 3, 32, 32), np.float32
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch, self.batch = self.batch, None
            return None if batch is None else {"input": batch}

        def rewind(self) -> None:
            self.__init__()  # type: ignore[misc]

    ranges = collect_ranges(fp32, Reader(), CalibrationSettings(method="minmax"), progress=False).ranges
    path = write_qdq(fp32, ranges, "tensorrt", folder / "r20.trt.onnx").path
    return onnx.load(str(path))


def test_every_tensor_has_one_shared_qdq_pair(tensorrt_model: onnx.ModelProto) -> None:
    """A block input read by a conv and by the residual Add goes through one Q/DQ pair, not one per reader.

    TensorRT fuses a Q/DQ pair into the layers that read it; a dedicated pair per reader
    (ONNX Runtime's DedicatedQDQPair) quantizes the same tensor twice.
    """
    assert LAYOUTS["tensorrt"].quantizer_options()["DedicatedQDQPair"] is False
    graph = tensorrt_model.graph
    quantized = Counter(n.input[0] for n in graph.node if n.op_type == "QuantizeLinear")
    assert quantized and max(quantized.values()) == 1, quantized.most_common(3)
    readers: Counter[str] = Counter()
    q_out = {n.output[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    for n in graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in q_out:
            readers[n.input[0]] += 1
    assert max(readers.values()) == 1  # one DequantizeLinear per QuantizeLinear
    consumers = Counter(i for n in graph.node for i in n.input)
    shared = [
        n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and consumers[n.output[0]] > 1
    ]
    assert len(shared) == 9, "each block's input feeds its first conv and its Add through one pair"


def test_the_fixture_of_the_engine_tests_is_edgeres_tensorrt_layout(tmp_path: Path) -> None:
    """The FP16 and engine tests convert and build the model edgeres writes, in the tensorrt layout."""
    from tests.engine import export_resnet20, quantize_qdq

    model = onnx.load(str(quantize_qdq(export_resnet20(tmp_path / "r20.onnx"), tmp_path / "q.onnx")))
    info = {p.key: p.value for p in model.metadata_props}
    assert '"target": "tensorrt"' in info["edgeres.quantization"]
    adds = [n for n in model.graph.node if n.op_type == "Add"]
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert adds and all(sorted(producers[i] for i in a.input) == ["Conv", "DequantizeLinear"] for a in adds)
