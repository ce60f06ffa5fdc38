"""Bias correction: the shift it removes is the measured mean of the weights' rounding error.

The reference in these tests measures directly what the module computes by linearity: the
quantized model's actual input to every layer is captured image by image, the layer's float and
int8 weights are applied to it with torch, and the mean difference per output channel is
compared with the bias change written into the corrected model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgeres.errors import EdgeresError
from tests.quantize.conftest import FragileModel

TARGETS = ("cpu", "tensorrt", "openvino")


@dataclass(frozen=True)
class Quantized:
    fp32: Path
    data: str
    ranges: dict
    qdq: dict[str, Path]


@pytest.fixture(scope="module")
def quantized(fragile_model: FragileModel, tmp_path_factory: pytest.TempPathFactory) -> Quantized:
    from edgeres.quantize.cache import load_cache
    from edgeres.quantize.workflow import QuantizeOptions, quantize

    out = tmp_path_factory.mktemp("bias")
    # the plain models every correction is measured against: no bias correction, 8-bit weights
    opts = QuantizeOptions(
        calib=fragile_model.data,
        target="all",
        calib_size=64,
        progress=False,
        bias_correction=False,
        weight_bits=8,
    )
    report = quantize(fragile_model.fp32, out / "m.onnx", opts)
    ranges, _ = load_cache(report.cache)
    return Quantized(
        fragile_model.fp32, fragile_model.data, ranges, {t.target: t.path for t in report.targets}
    )


def _reader(data: str, batch: int = 16):
    from edgeres.data import BatchReader, open_source
    from edgeres.metadata import Preprocessing

    source = open_source(data)
    return BatchReader(source, np.arange(64), Preprocessing(input_size=(32, 32)), "input", batch)


def _session(model, target: str):
    import onnxruntime as ort

    from edgeres.quantize.targets import faithful_to

    return ort.InferenceSession(
        model.SerializeToString(),
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(faithful_to(target)) or None,
    )


def _captured(path: Path, names: list[str], data: str, target: str) -> dict[str, np.ndarray]:
    """Every image's value of tensors ``names`` in the model at ``path``."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    for name in names:
        model.graph.output.append(helper.make_empty_tensor_value_info(name))
    session = _session(model, target)
    found: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for batch in _reader(data):
        values = session.run(names, {session.get_inputs()[0].name: batch["input"]})
        for name, value in zip(names, values, strict=True):
            found[name].append(value)
    return {n: np.concatenate(v).astype(np.float64) for n, v in found.items()}


def _direct_shift(layer, x: np.ndarray) -> np.ndarray:
    """Mean over images and positions of (W_int8 - W) applied to the captured inputs ``x``."""
    import torch
    import torch.nn.functional as F

    dw = torch.from_numpy(layer.dw)
    xt = torch.from_numpy(x)
    if layer.op == "Conv":
        top, left, bottom, right = layer.attrs.get("pads", [0, 0, 0, 0])
        y = F.conv2d(
            F.pad(xt, [left, right, top, bottom]),
            dw,
            stride=layer.attrs.get("strides", [1, 1]),
            groups=layer.attrs.get("group", 1),
        )
        return y.mean(dim=(0, 2, 3)).numpy()
    return (xt @ (dw.T if layer.attrs.get("transB", 0) else dw)).mean(0).numpy()


def _biases(path: Path) -> dict[str, np.ndarray]:
    import onnx

    from edgeres.quantize.bias_correction import _Constants

    graph = onnx.load(str(path)).graph
    constants = _Constants(graph)
    return {
        n.name: constants.value(n.input[2]).astype(np.float64)
        for n in graph.node
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 2
    }


def _two_conv_graphs():
    """A float model of two convs, and its Q/DQ twin: one conv with stored int8 weights, one
    whose float weights a QuantizeLinear turns into int8 inside the graph (per output channel)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w1 = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (2, 4, 1, 1)).astype(np.float32)
    s1 = (np.abs(w1).reshape(4, -1).max(1) / 127).astype(np.float32)
    s2 = (np.abs(w2).reshape(2, -1).max(1) / 127).astype(np.float32)
    q1 = np.clip(np.rint(w1 / s1[:, None, None, None]), -128, 127).astype(np.int8)

    def graph(nodes, inits):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        return helper.make_model(
            helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(a, n) for n, a in inits.items()])
        )

    convs = [
        helper.make_node("Conv", ["x", "w1"], ["h"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["h", "w2"], ["y"], name="c2"),
    ]
    fp32 = graph(convs, {"w1": w1, "w2": w2})
    zeros = {"z1": np.zeros(4, np.int8), "z2": np.zeros(2, np.int8)}
    qdq_nodes = [
        helper.make_node("DequantizeLinear", ["q1", "s1", "z1"], ["w1_dq"], name="dq1", axis=0),
        helper.make_node("QuantizeLinear", ["w2", "s2", "z2"], ["w2_q"], name="qw2", axis=0),
        helper.make_node("DequantizeLinear", ["w2_q", "s2", "z2"], ["w2_dq"], name="dq2", axis=0),
        helper.make_node("Conv", ["x", "w1_dq"], ["h"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["h", "w2_dq"], ["y"], name="c2"),
    ]
    qdq = graph(qdq_nodes, {"q1": q1, "s1": s1, "w2": w2, "s2": s2, **zeros})
    q2 = np.clip(np.rint(w2 / s2[:, None, None, None]), -128, 127)
    expected = {
        "c1": q1.astype(np.float64) * s1[:, None, None, None] - w1,
        "c2": q2 * s2[:, None, None, None].astype(np.float64) - w2,
    }
    return fp32, qdq, expected


def test_each_layers_weight_error_is_its_int8_weights_minus_its_float_ones() -> None:
    """Both ways int8 weights appear in a Q/DQ graph, checked against numpy; reading twice changes nothing."""
    from onnx import numpy_helper

    from edgeres.quantize.bias_correction import _quantized_layers

    fp32, qdq, expected = _two_conv_graphs()
    before = {t.name: numpy_helper.to_array(t).copy() for m in (fp32, qdq) for t in m.graph.initializer}
    for _ in range(2):
        layers = _quantized_layers(fp32, qdq)
        assert [(layer.node, layer.data) for layer in layers] == [("c1", "x"), ("c2", "h")]
        for layer in layers:
            assert layer.dw.dtype == np.float64
            np.testing.assert_allclose(layer.dw, expected[layer.node], rtol=0, atol=1e-7)
            assert np.abs(layer.dw).max() > 1e-4  # rounding did move these weights
    after = {t.name: numpy_helper.to_array(t) for m in (fp32, qdq) for t in m.graph.initializer}
    assert all(np.array_equal(before[n], after[n]) for n in before)


@pytest.mark.parametrize("target", TARGETS)
def test_the_bias_change_is_the_measured_mean_of_the_weight_error(
    quantized: Quantized, target: str, tmp_path: Path
) -> None:
    import onnx

    from edgeres.quantize.bias_correction import _quantized_layers, correct_biases
    from edgeres.quantize.targets import faithful_to

    qdq = quantized.qdq[target]
    out = tmp_path / "corrected.onnx"
    done = correct_biases(
        quantized.fp32, qdq, _reader(quantized.data), out, disabled_optimizers=faithful_to(target)
    )
    layers = _quantized_layers(onnx.load(str(quantized.fp32)), onnx.load(str(qdq)))
    assert len(layers) == len(done.layers) == 20  # resnet20: 19 convs and the classifier
    assert done.num_images == 64
    inputs = _captured(qdq, sorted({layer.data for layer in layers}), quantized.data, target)
    before, after = _biases(quantized.fp32), _biases(out)
    for layer, record in zip(layers, done.layers, strict=True):
        shift = _direct_shift(layer, inputs[layer.data])
        change = before[layer.node] - after[layer.node]
        # biases are stored as float32: the change is exact to a few ulps of the bias
        ulps = 4 * np.finfo(np.float32).eps * max(1.0, float(np.abs(before[layer.node]).max()))
        np.testing.assert_allclose(change, shift, rtol=1e-4, atol=ulps)
        assert record.node == layer.node
        assert record.mean_abs == pytest.approx(np.abs(shift).mean(), rel=1e-4)
        assert record.max_abs == pytest.approx(np.abs(shift).max(), rel=1e-4)
    assert max(r.max_abs for r in done.layers) > 1e-3  # the test model's rounding does shift means


@pytest.mark.parametrize("target", TARGETS)
def test_the_written_int8_model_carries_the_correction(
    quantized: Quantized, target: str, tmp_path: Path
) -> None:
    """In the first conv (whose input no correction changes), int8 output means match float weights'."""
    import onnx

    from edgeres.quantize.bias_correction import _Constants, _quantized_layers
    from edgeres.quantize.refine import write_bias_corrected

    out = tmp_path / f"m.{target}.onnx"
    qdq, done = write_bias_corrected(
        quantized.fp32, quantized.ranges, target, out, _reader(quantized.data), calibration={"method": "x"}
    )
    assert qdq.path == out and done.layers
    meta = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["edgeres.quantization"])
    assert meta["calibration"] == {"method": "x", "bias_correction": {"layers": 20, "images": 64}}
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # the temporary folder is gone

    def first_conv_gap(path: Path) -> np.ndarray:
        layers = _quantized_layers(onnx.load(str(quantized.fp32)), onnx.load(str(path)))
        first = layers[0]
        node = next(n for n in onnx.load(str(path)).graph.node if n.name == first.node)
        got = _captured(path, [first.data, node.output[0]], quantized.data, target)
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(got[first.data])
        top, left, bottom, right = first.attrs.get("pads", [0, 0, 0, 0])
        graph = onnx.load(str(quantized.fp32)).graph
        fp32_node = next(n for n in graph.node if n.name == first.node)
        w_fp32 = torch.from_numpy(_Constants(graph).value(fp32_node.input[1]).astype(np.float64))
        ref = F.conv2d(F.pad(x, [left, right, top, bottom]), w_fp32).mean((0, 2, 3))
        bias = _biases(quantized.fp32)[first.node]
        return got[node.output[0]].mean(axis=(0, 2, 3)) - (ref.numpy() + bias)

    plain, corrected = first_conv_gap(quantized.qdq[target]), first_conv_gap(out)
    assert np.abs(corrected).max() < 0.05 * np.abs(plain).max()


def test_each_layer_gets_a_bias_of_its_own_and_nothing_unused_is_left(
    quantized: Quantized, tmp_path: Path
) -> None:
    """Exporters share equal biases between layers (through Identity nodes); corrections differ."""
    import onnx

    from edgeres.quantize.bias_correction import correct_biases

    out = tmp_path / "corrected.onnx"
    correct_biases(quantized.fp32, quantized.qdq["cpu"], _reader(quantized.data), out)
    graph = onnx.load(str(out)).graph
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    biases = [n.input[2] for n in graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(set(biases)) == len(biases) == 20
    used = {i for n in graph.node for i in n.input}
    assert {t.name for t in graph.initializer} <= used
    assert not [n for n in graph.node if n.op_type == "Identity" and n.output[0] not in used]


def test_a_model_without_int8_weights_is_refused(quantized: Quantized, tmp_path: Path) -> None:
    from edgeres.quantize.bias_correction import correct_biases

    with pytest.raises(EdgeresError, match="no quantized Conv or Gemm"):
        correct_biases(quantized.fp32, quantized.fp32, _reader(quantized.data), tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_an_interrupted_correction_leaves_nothing_behind(quantized: Quantized, tmp_path: Path) -> None:
    from edgeres.quantize.refine import write_bias_corrected

    def interrupted():
        yield from (b for i, b in enumerate(_reader(quantized.data)) if i < 2)
        raise KeyboardInterrupt

    out = tmp_path / "m.onnx"
    with pytest.raises(KeyboardInterrupt):
        write_bias_corrected(quantized.fp32, quantized.ranges, "cpu", out, interrupted())
    assert not list(tmp_path.iterdir())


def test_quantize_cli_records_what_bias_correction_did(quantized: Quantized, tmp_path: Path, run_cli) -> None:
    from edgeres.records import read_quantize

    out, js = tmp_path / "m.onnx", tmp_path / "q.json"
    args = ["quantize", str(quantized.fp32), "--calib", quantized.data, "--calib-size", "64", "-o", str(out)]
    r = run_cli(*args, "--target", "cpu", "--bias-correction", "--json", str(js), "--no-progress")
    assert r.code == 0, r.err
    assert "bias correction (cpu): 20 layers on 64 images, mean |shift| " in r.out
    record = read_quantize(js)
    bc = record.targets[0].bias_correction
    assert bc is not None and (bc.layers, bc.images, len(bc.per_layer)) == (20, 64, 20)
    assert json.loads(js.read_text())["targets"][0]["bias_correction"]["layers"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.calib.json", "m.onnx", "q.json"]

    plain, plain_js = tmp_path / "plain.onnx", tmp_path / "plain.json"
    cache = str(tmp_path / "m.calib.json")
    reuse = ["quantize", str(quantized.fp32), "--calib-cache", cache, "--target", "cpu"]
    r = run_cli(*reuse, "-o", str(plain), "--json", str(plain_js), "--no-bias-correction")
    assert r.code == 0, r.err
    assert "bias correction" not in r.out
    assert read_quantize(plain_js).targets[0].bias_correction is None

    # on by default: a reused cache's corrections are applied ...
    again, again_js = tmp_path / "again.onnx", tmp_path / "again.json"
    r = run_cli(*reuse, "-o", str(again), "--json", str(again_js))
    assert r.code == 0, r.err
    assert "bias correction (cpu): 20 layers on 64 images" in r.out
    # ... and where the cache keeps none for the layout and no images are given, quantize goes on
    # without them and says so (--bias-correction insists, and fails: see the reuse test)
    other = tmp_path / "other.onnx"
    r = run_cli(*reuse[:-2], "--target", "tensorrt", "-o", str(other))
    assert r.code == 0, r.err
    assert "bias correction: off for the tensorrt layout" in r.err and "give --calib DIR" in r.err
    assert "bias correction (" not in r.out and other.exists()


def test_a_calibration_cache_keeps_the_corrections_for_reuse(
    quantized: Quantized, tmp_path: Path, run_cli
) -> None:
    import onnx
    from onnx import numpy_helper

    from edgeres.records import read_quantize

    cache = tmp_path / "c.calib.json"
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    common = [
        "quantize",
        str(quantized.fp32),
        "--target",
        "cpu",
        "--bias-correction",
        "--weight-bits",
        "8",
        "--calib-cache",
        str(cache),
    ]
    r = run_cli(*common, "--calib", quantized.data, "--calib-size", "64", "-o", str(first), "--no-progress")
    assert r.code == 0, r.err
    assert list(json.loads(cache.read_text())["bias_corrections"]) == ["cpu"]
    js = tmp_path / "b.json"
    r = run_cli(*common, "-o", str(second), "--json", str(js))  # no images: the cache's corrections
    assert r.code == 0, r.err
    bc = read_quantize(js).targets[0].bias_correction
    assert bc is not None and (bc.layers, bc.images) == (20, 64)
    assert json.loads(js.read_text())["targets"][0]["bias_correction"]["reused"] is True

    def weights(path: Path) -> dict[str, np.ndarray]:
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}

    a, b = weights(first), weights(second)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    # another layout, other layers in float or other weight bits were never measured: say what to do
    for extra in (["--target", "tensorrt"], ["--exclude", "/fc/Gemm"], ["--weight-bits", "7"]):
        r = run_cli(*common, "-o", str(tmp_path / "c.onnx"), *extra)
        assert r.code == 2 and "keeps no bias correction" in r.err and "give --calib DIR" in r.err, r.err
    # damaged stored corrections are refused, not applied
    data = json.loads(cache.read_text())
    node = next(iter(data["bias_corrections"]["cpu"]["shifts"]))
    data["bias_corrections"]["cpu"]["shifts"][node] = ["NaN"]
    cache.write_text(json.dumps(data))
    r = run_cli(*common, "-o", str(tmp_path / "d.onnx"))
    assert r.code == 1 and "malformed bias corrections" in r.err, r.err


def _with_batchnorm(fp32: Path, out: Path) -> Path:
    """``fp32`` with a BatchNormalization after every Conv and the Conv weights divided to match.

    An ONNX from another exporter often keeps its BatchNorms; ONNX Runtime's quantization folds
    them, so the int8 weights round the folded weights, not the Conv's own. The function is the
    same as ``fp32``'s (to float rounding), and so must be every correction.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    rng = np.random.default_rng(0)
    nodes = []
    for node in graph.node:
        nodes.append(node)
        if node.op_type != "Conv":
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        c = w.shape[0]
        gamma, beta = rng.uniform(0.5, 2.0, c), rng.normal(0, 0.5, c)
        mean, var, eps = rng.normal(0, 0.5, c), rng.uniform(0.5, 2.0, c), 1e-5
        a = gamma / np.sqrt(var + eps)
        tag = node.name.replace("/", "_")
        params = {
            f"{tag}_w": w / a[:, None, None, None], f"{tag}_b": (b - beta) / a + mean,
            f"{tag}_g": gamma, f"{tag}_beta": beta, f"{tag}_mean": mean, f"{tag}_var": var,
        }  # fmt: skip
        for name, v in params.items():
            graph.initializer.append(numpy_helper.from_array(v.astype(np.float32), name))
        result = node.output[0]
        node.input[1], node.input[2], node.output[0] = f"{tag}_w", f"{tag}_b", f"{tag}_raw"
        nodes.append(
            helper.make_node(
                "BatchNormalization", [f"{tag}_raw", *list(params)[2:]], [result], f"{tag}_bn", epsilon=eps
            )
        )
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_convs_followed_by_batchnorm_get_the_corrections_of_their_folded_twin(
    quantized: Quantized, target: str, tmp_path: Path
) -> None:
    """The float weights compared with the int8 ones are those ONNX Runtime quantizes (BN folded)."""
    import onnx

    from edgeres.quantize.refine import write_bias_corrected

    twin = _with_batchnorm(quantized.fp32, tmp_path / "bn.onnx")
    assert sum(n.op_type == "BatchNormalization" for n in onnx.load(str(twin)).graph.node) == 19
    _, plain = write_bias_corrected(
        quantized.fp32, quantized.ranges, target, tmp_path / "a.onnx", _reader(quantized.data)
    )
    _, bn = write_bias_corrected(twin, quantized.ranges, target, tmp_path / "b.onnx", _reader(quantized.data))
    assert sorted(bn.shifts) == sorted(plain.shifts) and len(plain.shifts) == 20
    for node, shift in plain.shifts.items():
        scale = max(1e-3, float(np.abs(shift).max()))
        np.testing.assert_allclose(bn.shifts[node], shift, rtol=0, atol=0.02 * scale, err_msg=node)
