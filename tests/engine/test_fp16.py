"""Float16 conversion: float32 I/O, float16 weights, outputs close to float32, Q/DQ models stay valid."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.engine.fp16 import FP16_QDQ_OPSET, PRECISION_KEY, convert_fp16, model_precision
from edgeres.errors import MissingDependencyError, UsageError
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, Preprocessing
from tests.conftest import CIFAR10_CLASSES, CifarFolder
from tests.engine import export_resnet20, quantize_qdq, random_images, run_onnxruntime, top1_agreement

needs_converter = pytest.mark.skipif(
    importlib.util.find_spec("onnxconverter_common") is None,
    reason="onnxconverter-common is not installed (pip install edgeres[tensorrt])",
)
PRE = Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_resnet20(tmp_path_factory.mktemp("fp16") / "r20.onnx")


@pytest.fixture(scope="module")
def fp16(fp32: Path) -> Path:
    if importlib.util.find_spec("onnxconverter_common") is None:
        pytest.skip("onnxconverter-common is not installed (pip install edgeres[tensorrt])")
    return convert_fp16(fp32, fp32.with_name("r20.fp16.onnx"))


@pytest.fixture(scope="module")
def qdq(fp32: Path) -> Path:
    return quantize_qdq(fp32, fp32.with_name("r20.int8.onnx"))


@needs_converter
def test_fp16_keeps_float32_io_and_metadata(fp32: Path, fp16: Path) -> None:
    model = onnx.load(str(fp16))
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    assert [i.type.tensor_type.elem_type for i in graph.input] == [TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in graph.output] == [TensorProto.FLOAT]
    floats = [t for t in graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    assert floats and all(t.data_type == TensorProto.FLOAT16 for t in floats)
    casts = [n for n in graph.node if n.op_type == "Cast" and n.attribute[0].i in (1, 10)]
    assert len(casts) == 2  # float32 in, float32 out: nothing else crosses precisions
    before = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    after = {p.key: p.value for p in model.metadata_props}
    assert after.pop(PRECISION_KEY) == "fp16" and after == before
    assert model_precision(model) == "fp16" and model_precision(onnx.load(str(fp32))) == "fp32"
    assert fp16.stat().st_size < 0.6 * fp32.stat().st_size
    assert not list(fp16.parent.glob(".*tmp"))


@needs_converter
def test_fp16_agrees_with_fp32_on_random_inputs(fp32: Path, fp16: Path) -> None:
    x = random_images(256)
    ref, got = run_onnxruntime(fp32, x), run_onnxruntime(fp16, x)
    assert got.dtype == np.float32 and got.shape == (256, 10)
    assert top1_agreement(ref, got) >= 0.95
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


@needs_converter
@pytest.mark.realdata
def test_fp16_agrees_with_fp32_on_real_images(cifar_train: CifarFolder, fp32: Path, fp16: Path) -> None:
    from PIL import Image

    from edgeres.data.preprocess import preprocess

    files = [p for cls in CIFAR10_CLASSES for p in sorted((cifar_train.path / cls).iterdir())[:10]]
    x = np.stack([preprocess(Image.open(p), PRE) for p in files]).astype(np.float32)
    assert x.shape == (100, 3, 32, 32)
    assert top1_agreement(run_onnxruntime(fp32, x), run_onnxruntime(fp16, x)) >= 0.95


@needs_converter
def test_qdq_model_becomes_int8_with_float16_scales(qdq: Path) -> None:
    assert model_precision(onnx.load(str(qdq))) == "int8"
    out = convert_fp16(qdq, qdq.with_name("r20.int8.fp16.onnx"))
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model_precision(model) == "int8+fp16"
    assert {p.key: p.value for p in model.metadata_props}[PRECISION_KEY] == "int8+fp16"
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= FP16_QDQ_OPSET  # float16 scales need opset 19
    init = {t.name: t for t in model.graph.initializer}
    qdq_nodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq_nodes) >= 40
    for node in qdq_nodes:  # one precision for every scale, int8 zero points untouched
        assert init[node.input[1]].data_type == TensorProto.FLOAT16
        if len(node.input) > 2:
            assert init[node.input[2]].data_type == TensorProto.INT8
    x = random_images(128, seed=3)
    assert top1_agreement(run_onnxruntime(qdq, x), run_onnxruntime(out, x)) >= 0.95


def test_scales_that_float16_cannot_hold_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    from edgeres.engine.fp16 import _check_scales

    before = {"s": np.array([1e-6, 0.01, 0.25])}
    after = {"s": before["s"].astype(np.float16).astype(np.float64)}
    with caplog.at_level("WARNING", logger="edgeres.engine.fp16"):
        _check_scales(before, after, "m.onnx")
    assert "1 of 3 Q/DQ scales of m.onnx" in caplog.text and "without --fp16" in caplog.text
    caplog.clear()
    _check_scales({"s": before["s"][1:]}, {"s": after["s"][1:]}, "m.onnx")
    assert not caplog.text


@needs_converter
def test_block_list_keeps_ops_in_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.standard_normal((5, 3)).astype(np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W"], ["scores"], transB=1),
            helper.make_node("Softmax", ["scores"], ["probs"], name="softmax"),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 5])],
        [weights],
    )
    src = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))

    def softmax_input_producer(path: Path) -> str:
        model = onnx.load(str(path))
        producer = {out: n for n in model.graph.node for out in n.output}
        softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
        return producer[softmax.input[0]].op_type

    assert softmax_input_producer(convert_fp16(src, tmp_path / "default.onnx")) == "Cast"  # kept float32
    assert softmax_input_producer(convert_fp16(src, tmp_path / "all.onnx", op_block_list=[])) == "Gemm"
    by_name = convert_fp16(src, tmp_path / "named.onnx", op_block_list=[], node_block_list=["softmax"])
    assert softmax_input_producer(by_name) == "Cast"
    x = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(run_onnxruntime(tmp_path / "all.onnx", x), run_onnxruntime(src, x), atol=2e-3)
    with pytest.raises(UsageError, match="not found"):
        convert_fp16(src, tmp_path / "x.onnx", node_block_list=["nope"])


@needs_converter
def test_refusals(fp32: Path, fp16: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="already float16"):
        convert_fp16(fp16, tmp_path / "again.onnx")
    with pytest.raises(UsageError, match="new file"):
        convert_fp16(fp32, fp32)
    with pytest.raises(UsageError, match="does not exist"):
        convert_fp16(tmp_path / "missing.onnx", tmp_path / "out.onnx")
    with pytest.raises(UsageError, match="folder"):
        convert_fp16(fp32, tmp_path)
    assert not (tmp_path / "again.onnx").exists()


def test_missing_converter_says_what_to_install(
    fp32: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)  # import now raises ImportError
    with pytest.raises(
        MissingDependencyError, match=r'onnxconverter-common: pip install "edgeres\[tensorrt\]"'
    ):
        convert_fp16(fp32, tmp_path / "out.onnx")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def tiny_qdq(fp32: Path) -> tuple[Path, Path]:
    """The tensorrt-layout model of a resnet20 whose convs have near-dead channels: per-channel
    weight scales from 1e-9 to 5e-5, below float16's normal range (as in real ResNets)."""
    model = onnx.load(str(fp32))
    init = {t.name: t for t in model.graph.initializer}
    factors = np.array([1e-7, 3e-6, 1e-4, 7e-4, 4e-3])  # times each channel's absmax/127 of ~0.01-0.1
    for conv in [n for n in model.graph.node if n.op_type == "Conv"][1:8]:
        t = init[conv.input[1]]
        w = numpy_helper.to_array(t).copy()
        w[: len(factors)] *= factors.reshape(-1, 1, 1, 1).astype(np.float32)
        t.CopyFrom(numpy_helper.from_array(w, t.name))
    tiny = fp32.with_name("tiny.onnx")
    onnx.save(model, str(tiny))
    return tiny, quantize_qdq(tiny, fp32.with_name("tiny.int8.onnx"))


def _weight_scales(model: onnx.ModelProto) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, scale) of every QuantizeLinear of a weight initializer, as float64."""
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    return [
        (init[n.input[0]], init[n.input[1]])
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] in init and init[n.input[0]].ndim == 4
    ]


@needs_converter
def test_tiny_weight_scales_round_up_so_no_weight_is_clipped(
    tiny_qdq: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    _, qdq = tiny_qdq
    before = _weight_scales(onnx.load(str(qdq)))
    tiny = sum(int(((s > 0) & (s < 2.0**-14)).sum()) for _, s in before)
    assert tiny >= 30 and min(float(s.min()) for _, s in before) < 1e-8
    with caplog.at_level("INFO", logger="edgeres.engine.fp16"):
        out = convert_fp16(qdq, qdq.with_name("tiny.int8.fp16.onnx"))
    assert f"rounded {tiny} per-channel weight scale(s)" in caplog.text
    assert "change by more than 0.1%" not in caplog.text  # nothing left for the warning
    after = _weight_scales(onnx.load(str(out)))
    assert len(after) == len(before)
    for (w32, s32), (w16, s16) in zip(before, after, strict=True):
        small = s32 < 2.0**-14
        assert (s16[small] >= s32[small]).all() and (s16 > 0).all()  # below normal: up, never to 0
        assert (np.abs(s16 - s32)[~small] <= s32[~small] * 2.0**-11).all()  # normal: the nearest
        step = s16.reshape(-1, 1, 1, 1)
        q = np.clip(np.rint(w16 / step), -127, 127)  # what TensorRT makes of the float16 weight
        error = np.abs(q * step - w32)
        assert (error <= step / 2 + np.abs(w32) * 2.0**-10 + 2.0**-24).all()  # no weight clipped
    x = random_images(256, seed=5)
    assert top1_agreement(run_onnxruntime(qdq, x), run_onnxruntime(out, x)) >= 0.995


def test_tiny_int8_weight_initializers_are_re_rounded() -> None:
    """The cpu layout stores int8 weights: a raised scale re-rounds them, and nothing clips."""
    from edgeres.engine.fp16 import round_up_tiny_weight_scales

    q = np.array([[127, -127, 64, 1], [100, -3, 0, 50]], np.int8).reshape(2, 4, 1, 1)
    scale = np.array([1.3e-6, 0.01], np.float32)
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["w", "s", "z"], ["wf"], axis=0)],
        "g",
        [],
        [helper.make_tensor_value_info("wf", TensorProto.FLOAT, [2, 4, 1, 1])],
        [
            numpy_helper.from_array(q, "w"),
            numpy_helper.from_array(scale, "s"),
            numpy_helper.from_array(np.zeros(2, np.int8), "z"),
        ],
    )
    model = helper.make_model(graph)
    assert round_up_tiny_weight_scales(model) == (1, pytest.approx(1.3e-6))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    s = init["s"]
    assert s[1] == np.float32(0.01) and s[0] > 1.3e-6 and np.float16(s[0]).astype(np.float32) == s[0]
    np.testing.assert_array_equal(init["w"][1], q[1])  # a normal channel is untouched
    values = init["w"][0].astype(np.float64) * s[0]
    assert np.abs(values - q[0].astype(np.float64) * 1.3e-6).max() <= s[0] / 2
    assert round_up_tiny_weight_scales(model) == (0, np.inf)  # once is enough
