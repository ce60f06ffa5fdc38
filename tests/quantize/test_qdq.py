"""Q/DQ INT8 models from calibrated ranges: TensorRT's layout rules, ORT's int8 CPU kernels, fidelity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgeres.errors import EdgeresError, UsageError
from edgeres.export.fold import randomize_batchnorm
from edgeres.export.onnx_export import export_onnx
from edgeres.export.onnx_meta import META_KEY
from edgeres.metadata import ModelMeta, Preprocessing
from edgeres.models import get_model
from edgeres.quantize.collect import collect_ranges
from edgeres.quantize.layouts import requantized_on_cpu, residual_adds
from edgeres.quantize.qdq import (
    QUANT_META_KEY,
    QdqResult,
    conv_kernels,
    count_int8_kernels,
    write_qdq,
)
from edgeres.quantize.ranges import Ranges, TensorRange
from edgeres.quantize.settings import CalibrationSettings
from edgeres.runners import OnnxRuntimeRunner
from tests.quantize.feeds import Batches

NUM_CONVS = 19  # resnet20: stem + 9 blocks x 2 convs (option-A shortcuts have none)


def _batches(n: int, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((8, 3, size, size), dtype=np.float32) for _ in range(n)]


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = get_model("resnet20", num_classes=10)
    randomize_batchnorm(net)
    meta = ModelMeta(arch="resnet20", num_classes=10, preprocessing=Preprocessing(input_size=(32, 32)))
    out = tmp_path_factory.mktemp("qdq") / "resnet20.onnx"
    return export_onnx(net.eval(), meta, out, exporter="torchscript", verify=False).path


@pytest.fixture(scope="module")
def ranges(fp32: Path) -> Ranges:
    result = collect_ranges(fp32, Batches(_batches(3)), CalibrationSettings(method="minmax"), progress=False)
    return result.ranges


@pytest.fixture(scope="module")
def written(fp32: Path, ranges: Ranges) -> dict[str, QdqResult]:
    return {
        t: write_qdq(
            fp32,
            ranges,
            t,
            fp32.with_name(f"r20.{t}.onnx"),
            calibration={"method": "minmax", "images": Path("imgs")},
        )
        for t in ("tensorrt", "cpu")
    }


class Graph:
    def __init__(self, path: Path) -> None:
        self.model = onnx.load(str(path))
        g = self.model.graph
        self.nodes = list(g.node)
        self.producer = {out: n for n in g.node for out in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.init = {t.name: numpy_helper.to_array(t) for t in g.initializer}

    def op(self, tensor: str) -> str:
        node = self.producer.get(tensor)
        return node.op_type if node else "initializer" if tensor in self.init else "graph input"

    def of(self, op_type: str) -> list[onnx.NodeProto]:
        return [n for n in self.nodes if n.op_type == op_type]


def test_both_targets_pass_the_checker_and_keep_metadata(fp32: Path, written: dict[str, QdqResult]) -> None:
    props = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    for target, result in written.items():
        assert result.target == target and result.path.is_file()
        assert result.size_bytes == result.path.stat().st_size
        assert result.num_quantized_nodes == NUM_CONVS + 1  # and the Gemm
        assert result.excluded_nodes == ()
        model = onnx.load(str(result.path))
        onnx.checker.check_model(model, full_check=True)
        got = {p.key: p.value for p in model.metadata_props}
        assert got[META_KEY] == props[META_KEY]
        assert {k for k in props if k.startswith("edgeres.")} <= set(got)
        info = json.loads(got[QUANT_META_KEY])
        assert info["target"] == target and info["method"] == "minmax"
        assert info["num_quantized_nodes"] == NUM_CONVS + 1
    assert not list(fp32.parent.glob(".*tmp"))  # no temporary files left behind


def test_tensorrt_layout(written: dict[str, QdqResult]) -> None:
    g = Graph(written["tensorrt"].path)
    for node in g.of("QuantizeLinear") + g.of("DequantizeLinear"):
        zp = g.init[node.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), f"{node.name}: zero point must be int8 0"
    convs = g.of("Conv")
    assert len(convs) == NUM_CONVS
    for conv in convs:
        x, w, b = conv.input
        assert g.op(x) == g.op(w) == "DequantizeLinear", conv.name
        w_dq = g.producer[w]
        assert g.op(w_dq.input[0]) == "QuantizeLinear"  # float weight -> Q -> DQ, as TensorRT wants it
        weight = g.init[g.producer[w_dq.input[0]].input[0]]
        scale = g.init[w_dq.input[1]]
        assert scale.shape == (weight.shape[0],), "per-channel weight scales, one per output channel"
        absmax = np.abs(weight).reshape(weight.shape[0], -1).max(1)
        np.testing.assert_allclose(scale, absmax / 127, rtol=1e-6, err_msg="symmetric, full 8-bit range")
        assert g.op(b) == "initializer" and g.init[b].dtype == np.float32, "bias stays float"
        for after in g.consumers[conv.output[0]]:
            if after.op_type == "QuantizeLinear":  # only where the output feeds a conv/add input
                dq = g.consumers[after.output[0]]
                assert all(c.op_type == "DequantizeLinear" for c in dq)
                assert {c.op_type for d in dq for c in g.consumers[d.output[0]]} <= {"Conv", "Add", "Gemm"}
    # no Q/DQ on ReLU alone: a Relu output is quantized only when a conv reads it
    for relu in g.of("Relu"):
        for q in [c for c in g.consumers.get(relu.output[0], []) if c.op_type == "QuantizeLinear"]:
            readers = {c.op_type for d in g.consumers[q.output[0]] for c in g.consumers[d.output[0]]}
            assert readers & {"Conv", "Gemm"}, relu.name
    adds = g.of("Add")
    assert len(adds) == 9
    for add in adds:  # residual input through Q/DQ, the conv's own output straight in (TensorRT fuses it)
        assert sorted(g.op(i) for i in add.input) == ["Conv", "DequantizeLinear"], add.name
    gemm = g.of("Gemm")[0]
    assert g.op(gemm.input[0]) == g.op(gemm.input[1]) == "DequantizeLinear"
    assert g.op(gemm.output[0]) == "Gemm" and not g.consumers.get(gemm.output[0])


def test_cpu_layout_runs_every_conv_in_int8(fp32: Path, written: dict[str, QdqResult]) -> None:
    counts = count_int8_kernels(written["cpu"].path)
    assert counts.get("QLinearConv") == NUM_CONVS
    assert counts.get("QLinearAdd") == 9
    assert conv_kernels(counts) == (NUM_CONVS + 1, 0)  # + the classifier's QGemm; no float conv left
    assert conv_kernels(count_int8_kernels(fp32)) == (0, NUM_CONVS + 1)
    g = Graph(written["cpu"].path)
    activation_zp = {g.init[q.input[2]].dtype for q in g.of("QuantizeLinear")}
    assert activation_zp == {np.dtype(np.uint8)}


def test_both_layouts_write_float_logits_from_the_classifier(written: dict[str, QdqResult]) -> None:
    """The logits come straight from the Gemm: quantized, they would lie on 256 levels, and
    classes within one step of each other would be decided by a runtime's rounding."""
    (x,) = _batches(1, seed=3)
    for target, result in written.items():
        g = Graph(result.path)
        (out,) = g.model.graph.output
        assert g.op(out.name) == "Gemm", target
        with OnnxRuntimeRunner(result.path, threads=1) as runner:
            logits = runner.infer(x)
        scale = np.ptp(logits) / 255
        steps = logits / scale
        assert np.abs(steps - np.round(steps)).max() > 0.01, f"{target}: logits on a 256-level grid"
    assert count_int8_kernels(written["cpu"].path).get("QGemm") == 1  # the classifier stays int8


def test_int8_models_follow_fp32(fp32: Path, written: dict[str, QdqResult]) -> None:
    (x,) = _batches(1, seed=7)
    with OnnxRuntimeRunner(fp32, threads=1) as runner:
        ref = runner.infer(x)
    for target, result in written.items():
        with OnnxRuntimeRunner(result.path, threads=1) as runner:
            got = runner.infer(x)
        assert got.shape == ref.shape
        assert np.corrcoef(ref.ravel(), got.ravel())[0, 1] > 0.95, target
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.75, target


def test_excluded_nodes_stay_float(
    fp32: Path, ranges: Ranges, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, last = "/conv1/Conv", Graph(fp32).of("Conv")[-1].name
    cpu = write_qdq(fp32, ranges, "cpu", tmp_path / "cpu.onnx", exclude_nodes=[first, last])
    assert cpu.excluded_nodes == (first, last)
    assert cpu.num_quantized_nodes == NUM_CONVS + 1 - 2
    g = Graph(cpu.path)
    for conv in (n for n in g.nodes if n.name in (first, last)):
        assert g.op(conv.input[1]) == "initializer" and g.init[conv.input[1]].dtype == np.float32
    keep_float = ["WeightBiasQuantization"]
    assert conv_kernels(count_int8_kernels(cpu.path, disabled_optimizers=keep_float)) == (NUM_CONVS - 1, 2)
    # Left alone, ORT quantizes a float conv between DQ and Q itself at load time; write_qdq says so.
    assert requantized_on_cpu(g.model.graph, [first, last]) == [last]  # the first reads the fp32 input
    assert conv_kernels(count_int8_kernels(cpu.path)) == (NUM_CONVS, 1)
    warned = [r.getMessage() for r in caplog.records if r.name == "edgeres.quantize.qdq"]
    assert warned == [
        f"ONNX Runtime's CPU optimizer (WeightBiasQuantization) will run {last} in int8 after all: "
        "each sits between DequantizeLinear and QuantizeLinear; create the session with "
        "disabled_optimizers=['WeightBiasQuantization'] to keep it in float"
    ]

    trt = write_qdq(fp32, ranges, "tensorrt", tmp_path / "trt.onnx", exclude_nodes=[last])
    g = Graph(trt.path)
    (conv,) = [n for n in g.nodes if n.name == last]
    assert g.op(conv.input[1]) == "initializer"  # float weights, no Q/DQ
    assert trt.num_quantized_nodes == NUM_CONVS
    info = json.loads({p.key: p.value for p in g.model.metadata_props}[QUANT_META_KEY])
    assert info["excluded_nodes"] == [last]


def test_bad_inputs(fp32: Path, ranges: Ranges, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    needed = next(n.input[0] for n in Graph(fp32).of("Conv") if n.input[0] != "input")
    partial = {k: v for k, v in ranges.items() if k != needed}
    with pytest.raises(EdgeresError) as err:
        write_qdq(fp32, partial, "tensorrt", out)
    assert str(err.value) == (
        f"no calibrated range for tensor '{needed}' of {fp32.name}, which the tensorrt layout quantizes; "
        f"calibrate this model (with {len(partial)} ranges given, the calibration may be of another model)"
    )
    with pytest.raises(UsageError, match="not found"):
        write_qdq(fp32, ranges, "cpu", out, exclude_nodes=["no_such_node"])
    unknown = r"^unknown quantization target 'gpu'; choose one of tensorrt, cpu, openvino$"
    with pytest.raises(UsageError, match=unknown):
        write_qdq(fp32, ranges, "gpu", out)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^no calibrated ranges given; calibrate the model first$"):
        write_qdq(fp32, {}, "cpu", out)
    with pytest.raises(UsageError, match=r"is a folder; give the \.onnx file to write$"):
        write_qdq(fp32, ranges, "cpu", tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        write_qdq(tmp_path / "missing.onnx", ranges, "cpu", out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_residual_add_with_two_conv_inputs() -> None:
    """ResNet-50's downsampling block: the projection conv's output is the residual input."""
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], "conv_a"),
        helper.make_node("Relu", ["a"], ["ra"], "relu_a"),
        helper.make_node("Conv", ["ra", "w"], ["b"], "conv_b"),
        helper.make_node("Conv", ["x", "w"], ["proj"], "conv_proj"),
        helper.make_node("Add", ["b", "proj"], ["sum"], "add"),
        helper.make_node("Add", ["sum", "w"], ["out"], "bias_add"),  # constant input: not residual
    ]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 2, 2]) for n in ("x", "out")]
    graph = helper.make_graph(nodes, "g", [vi[0]], [vi[1]], [w])
    (found,) = residual_adds(graph)
    assert (found.add, found.main, found.residual, found.conv) == ("add", "b", "proj", "conv_b")


def test_the_quantizer_call_leaves_the_root_logger_alone() -> None:
    """ORT's quantizer logs with logging.info(), which installs a root handler when there is
    none (logging.basicConfig): every later edgeres line would print twice."""
    import logging

    from edgeres.quantize.qdq import _root_logging_untouched

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    for handler in saved:  # as in the CLI: no root handler of our own
        root.removeHandler(handler)
    try:
        with _root_logging_untouched():
            logging.info("what ORT's quantizer does")
            assert root.handlers  # basicConfig ran
        assert root.handlers == [] and root.level == level
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def test_the_model_records_how_it_was_quantized(written: dict[str, QdqResult], ranges: Ranges) -> None:
    import onnxruntime

    from edgeres.quantize.layouts import LAYOUTS

    for target, result in written.items():
        props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
        assert json.loads(props[QUANT_META_KEY]) == {
            "target": target,
            "method": "minmax",
            "layout": LAYOUTS[target].describe(),
            "num_quantized_nodes": NUM_CONVS + 1,
            "excluded_nodes": [],
            "num_ranges": len(ranges),
            "onnxruntime": onnxruntime.__version__,
            "calibration": {"method": "minmax", "images": "imgs"},
        }


def test_counting_kernels_of_a_missing_or_damaged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"^ONNX model 'gone.onnx' does not exist$"):
        count_int8_kernels("gone.onnx")
    Path("bad.onnx").write_bytes(b"not a model")
    with pytest.raises(EdgeresError, match=r"^ONNX Runtime cannot load 'bad.onnx': (?!None$)\S"):
        count_int8_kernels("bad.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]  # nothing written beside it


def test_the_summary_line() -> None:
    plain = QdqResult(Path("m.onnx"), "cpu", 3, (), 1_050_000)
    assert plain.summary() == "m.onnx (cpu Q/DQ layout, 3 weighted ops in int8, 1.1 MB)"
    kept = QdqResult(Path("m.onnx"), "tensorrt", 3, ("a", "b"), 1_050_000)
    assert kept.summary() == "m.onnx (tensorrt Q/DQ layout, 3 weighted ops in int8, 2 kept in float, 1.1 MB)"


def test_unknown_nodes_to_keep_in_float_are_named(fp32: Path, ranges: Ranges, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    five = [f"n{i}" for i in range(5)]
    with pytest.raises(UsageError) as err:
        write_qdq(fp32, ranges, "cpu", out, exclude_nodes=["/conv1/Conv", *five])
    assert str(err.value) == f"node(s) to keep in float not found in {fp32.name}: n0, n1, n2, n3, n4"
    with pytest.raises(UsageError) as err:
        write_qdq(fp32, ranges, "cpu", out, exclude_nodes=[*five, "n5"])
    assert (
        str(err.value) == f"node(s) to keep in float not found in {fp32.name}: n0, n1, n2, n3, n4 and 1 more"
    )
    assert not out.exists()


def test_the_metadata_is_written_with_sorted_keys(written: dict[str, QdqResult]) -> None:
    props = {p.key: p.value for p in onnx.load(str(written["cpu"].path)).metadata_props}
    raw = props[QUANT_META_KEY]
    assert raw == json.dumps(json.loads(raw), sort_keys=True)  # stable bytes for the same settings


def test_a_damaged_model_cannot_be_prepared(tmp_path: Path, ranges: Ranges) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EdgeresError) as err:
        write_qdq(bad, ranges, "cpu", tmp_path / "q.onnx")
    message = str(err.value)
    assert message.startswith(f"cannot prepare '{bad}' for quantization: ")
    assert message.removeprefix(f"cannot prepare '{bad}' for quantization: ") not in ("", "None")


def test_counting_kernels_writes_nothing_beside_the_caller(
    fp32: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert conv_kernels(count_int8_kernels(fp32)) == (0, NUM_CONVS + 1)
    assert list(tmp_path.iterdir()) == []  # ORT's optimized copy went to a temporary folder


def test_only_the_cpu_layout_warns_of_requantized_float_convs(
    fp32: Path, ranges: Ranges, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    middle = Graph(fp32).of("Conv")[1].name  # reads a Relu through Q/DQ, feeds a Relu a conv reads
    trt = write_qdq(fp32, ranges, "tensorrt", tmp_path / "trt.onnx", exclude_nodes=[middle])
    assert requantized_on_cpu(Graph(trt.path).model.graph, [middle]) == [middle]  # what ORT would do
    assert [r for r in caplog.records if r.name == "edgeres.quantize.qdq"] == []  # TensorRT does not


def _conv_relu(path: Path, declared_output: list[int]) -> Path:
    """Conv -> Relu on a 1x3x8x8 input, its output declared as ``declared_output``."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros((4,), np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["y"], "conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["y"], ["z"], "relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, declared_output)],
        [w, b],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_a_model_whose_declared_shapes_contradict_it_is_refused(target: str, tmp_path: Path) -> None:
    """ONNX's plain check and ORT's pre-processing let a wrong declared output shape through
    (4 channels computed, 5 declared); the full check (strict shape inference) does not."""
    ranges = {n: TensorRange(n, -1.0, 1.0) for n in ("x", "y", "z")}
    good_model = _conv_relu(tmp_path / "good.onnx", [1, 4, 8, 8])
    good = write_qdq(good_model, ranges, target, tmp_path / "good.q.onnx")
    assert good.num_quantized_nodes == 1
    bad = _conv_relu(tmp_path / "bad.onnx", [1, 5, 8, 8])
    onnx.checker.check_model(onnx.load(str(bad)))  # the plain check passes
    out = tmp_path / "bad.q.onnx"
    with pytest.raises(EdgeresError) as err:
        write_qdq(bad, ranges, target, out)
    assert re.fullmatch(
        r"the quantized model failed ONNX's checker: \[ShapeInferenceError\] .*"
        r"Inferred shape and existing shape differ in dimension 1: \(4\) vs \(5\)",
        str(err.value),
    ), str(err.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx", "good.onnx", "good.q.onnx"]


def _block_with_a_sigmoid_skip(path: Path) -> Path:
    """x -> conv_a -> relu -> conv_b -> add <- sigmoid <- x: the skip tensor feeds only the Add."""
    init = [numpy_helper.from_array(np.full((4, 4, 3, 3), 0.1, np.float32), n) for n in ("wa", "wb")]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "wa"], ["a"], "conv_a", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["a"], ["r"], "relu"),
            helper.make_node("Conv", ["r", "wb"], ["m"], "conv_b", pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["x"], ["s"], "sigmoid"),
            helper.make_node("Add", ["m", "s"], ["y"], "add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        init,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_kept_add_or_its_conv_keeps_the_residual_float(tmp_path: Path) -> None:
    """TensorRT fuses a residual Add into the conv of its main branch; with either kept in float
    there is no fusion to feed, so the skip input gets no Q/DQ of its own."""
    fp32 = _block_with_a_sigmoid_skip(tmp_path / "block.onnx")
    (add,) = residual_adds(onnx.load(str(fp32)).graph)
    assert (add.add, add.main, add.residual, add.conv) == ("add", "m", "s", "conv_b")
    ranges = {n: TensorRange(n, -2.0, 2.0) for n in ("x", "a", "r", "m", "s", "y")}

    def skip_input(exclude: list[str]) -> str:
        g = Graph(write_qdq(fp32, ranges, "tensorrt", tmp_path / "q.onnx", exclude_nodes=exclude).path)
        (node,) = g.of("Add")
        return g.op(node.input[1])

    assert skip_input([]) == "DequantizeLinear"
    assert skip_input(["add"]) == "Sigmoid"
    assert skip_input(["conv_b"]) == "Sigmoid"
    assert skip_input(["conv_a"]) == "DequantizeLinear"


def test_the_warning_names_every_requantized_conv(
    fp32: Path, ranges: Ranges, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    convs = Graph(fp32).of("Conv")
    a, b = convs[1].name, convs[3].name  # the first conv of two blocks: Q/DQ in, a Relu to a Q out
    write_qdq(fp32, ranges, "cpu", tmp_path / "cpu.onnx", exclude_nodes=[a, b])
    warned = [r.getMessage() for r in caplog.records if r.name == "edgeres.quantize.qdq"]
    assert len(warned) == 1 and warned[0].startswith(
        f"ONNX Runtime's CPU optimizer (WeightBiasQuantization) will run {a}, {b} in int8 after all: "
    )
