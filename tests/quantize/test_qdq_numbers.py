"""The numbers in the written Q/DQ models: every scale and zero point against the ranges handed over.

ONNX Runtime turns a range into a scale and zero point with ``compute_scale_zp``
(onnxruntime/quantization/quant_utils.py): the range is widened to include 0; symmetric int8
uses levels -127..127, so scale = 2 * absmax / 254 = absmax / 127 and zero point 0; asymmetric
uint8 uses 0..255, scale = (hi - lo) / 255 and zero point round(-lo / scale). It computes in
float64 and stores the scale as float32; the expectations below do the same, so they are exact.
Weights are per output channel (axis 0 of a Conv's weight): absmax of that channel / 127, zero 0.

What each layout promises is written here, not read from :mod:`edgeres.quantize.layouts`, so a
change of number format there fails these tests:

* cpu: uint8 asymmetric activations (zero points follow the data), int8 symmetric per-channel weights;
* tensorrt: int8 symmetric activations (zero point 0), int8 symmetric per-channel weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from edgeres.quantize.collect import collect_ranges
from edgeres.quantize.qdq import write_qdq
from edgeres.quantize.ranges import Ranges
from edgeres.quantize.settings import CalibrationSettings
from tests.quantize.feeds import Batches


@pytest.fixture(scope="module")
def fp32_and_ranges(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ranges]:
    import torch

    from edgeres.export.fold import randomize_batchnorm
    from edgeres.export.onnx_export import export_onnx
    from edgeres.metadata import ModelMeta, Preprocessing
    from edgeres.models import get_model

    torch.manual_seed(1)
    net = get_model("resnet20", num_classes=10)
    randomize_batchnorm(net, seed=1)
    meta = ModelMeta(arch="resnet20", num_classes=10, preprocessing=Preprocessing(input_size=(16, 16)))
    out = tmp_path_factory.mktemp("numbers") / "r20.onnx"
    fp32 = export_onnx(net.eval(), meta, out, exporter="torchscript", verify=False).path
    rng = np.random.default_rng(0)
    # shifted inputs: the input range is far from symmetric
    batches = [(rng.standard_normal((4, 3, 16, 16)) * 0.5 + 0.8).astype(np.float32) for _ in range(2)]
    ranges = collect_ranges(
        fp32, Batches(batches), CalibrationSettings(method="minmax"), progress=False
    ).ranges
    return fp32, ranges


@pytest.fixture(scope="module")
def written(fp32_and_ranges: tuple[Path, Ranges]) -> dict[str, Path]:
    fp32, ranges = fp32_and_ranges
    return {t: write_qdq(fp32, ranges, t, fp32.with_name(f"r20.{t}.onnx")).path for t in ("cpu", "tensorrt")}


def symmetric_int8(absmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(absmax, np.float32).astype(np.float64)
    return (2 * a / 254).astype(np.float32), np.zeros(a.shape, np.int8)


def asymmetric_uint8(lo: float, hi: float) -> tuple[np.float32, np.uint8]:
    rmin = np.float64(min(np.float32(lo), np.float32(0)))
    rmax = np.float64(max(np.float32(hi), np.float32(0)))
    scale = (rmax - rmin) / 255
    return np.float32(scale), np.uint8(np.round(0 - rmin / scale))


class Quantized:
    """Every QuantizeLinear/DequantizeLinear of a model with its scale, zero point and axis."""

    def __init__(self, path: Path) -> None:
        graph = onnx.load(str(path)).graph
        self.init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.zp_type = {t.name: t.data_type for t in graph.initializer}
        self.nodes = list(graph.node)

    def params(self, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray, int | None]:
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        return self.init[node.input[1]], self.init[node.input[2]], axis

    def activation_q(self) -> dict[str, onnx.NodeProto]:
        """QuantizeLinear of a computed tensor (or the graph input), by that tensor's name."""
        return {
            n.input[0]: n for n in self.nodes if n.op_type == "QuantizeLinear" and n.input[0] not in self.init
        }

    def weight_dq(self, fp32_weights: dict[str, np.ndarray]) -> dict[str, onnx.NodeProto]:
        """DequantizeLinear of each conv/gemm weight, by the fp32 weight's name."""
        found = {}
        producer = {o: n for n in self.nodes for o in n.output}
        for n in self.nodes:
            if n.op_type != "DequantizeLinear":
                continue
            source = n.input[0]
            if source in producer and producer[source].op_type == "QuantizeLinear":  # Q(float W) -> DQ
                source = producer[source].input[0]
            name = source.removesuffix("_quantized")
            if name in fp32_weights and fp32_weights[name].ndim >= 2:
                found[name] = n
        return found


#: Ops whose output ONNX Runtime quantizes with its input's scale and zero point (it only moves data).
SHARES_INPUT_PARAMS = frozenset(
    {"Slice", "Pad", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "MaxPool"}
)


def range_of(tensor: str, producers: dict[str, onnx.NodeProto]) -> str:
    """The tensor whose calibrated range sets ``tensor``'s quantization."""
    tensor = tensor.removesuffix("_QuantizeLinear_Input")  # a graph output, renamed by ORT
    while tensor in producers and producers[tensor].op_type in SHARES_INPUT_PARAMS:
        tensor = producers[tensor].input[0]
    return tensor


def fp32_weights(fp32: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_activation_scales_and_zero_points_come_from_the_ranges(
    target: str, fp32_and_ranges: tuple[Path, Ranges], written: dict[str, Path]
) -> None:
    fp32, ranges = fp32_and_ranges
    producers = {o: n for n in onnx.load(str(fp32)).graph.node for o in n.output}
    q = Quantized(written[target])
    quantized = q.activation_q()
    assert "input" in quantized and len(quantized) >= (20 if target == "cpu" else 19)
    nonzero_zero_points = 0
    for tensor, node in quantized.items():
        scale, zp, _ = q.params(node)
        assert scale.shape == () and zp.shape == (), tensor  # per-tensor activations
        # ORT's own layout gives data-moving ops their input's parameters; the tensorrt layout
        # quantizes a residual input (the Pad of an option-A shortcut) with its own range
        r = ranges[range_of(tensor, producers) if target == "cpu" else tensor]
        if target == "cpu":
            assert q.zp_type[node.input[2]] == TensorProto.UINT8, tensor
            want_scale, want_zp = asymmetric_uint8(r.lo, r.hi)
            nonzero_zero_points += int(zp != 0)
        else:
            assert q.zp_type[node.input[2]] == TensorProto.INT8, tensor
            s, z = symmetric_int8(np.float32(r.absmax))
            want_scale, want_zp = s[()], z[()]
        assert scale == want_scale, (tensor, scale, want_scale, r)
        assert zp == want_zp, (tensor, zp, want_zp, r)
    if target == "cpu":
        lo, hi = ranges["input"].lo, ranges["input"].hi
        assert lo < 0 < hi and abs(lo) < 0.7 * hi  # the data are asymmetric ...
        scale, zp, _ = q.params(quantized["input"])
        assert 0 < zp < 128 and zp == np.round(-lo / np.float64(hi - lo) * 255)  # ... and so is the format
        assert nonzero_zero_points >= 1


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_weights_are_int8_symmetric_per_output_channel(
    target: str, fp32_and_ranges: tuple[Path, Ranges], written: dict[str, Path]
) -> None:
    fp32, _ = fp32_and_ranges
    weights = fp32_weights(fp32)
    q = Quantized(written[target])
    dq = q.weight_dq(weights)
    convs = [n for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    assert {n.input[1] for n in convs} <= set(dq)  # every conv weight is quantized
    for name, node in dq.items():
        w = weights[name]
        scale, zp, axis = q.params(node)
        channel_axis = 0 if w.ndim == 4 else axis  # Gemm: ORT's choice, checked against its shape below
        assert channel_axis is not None
        if w.ndim == 4:
            assert axis == 0, name
        others = tuple(i for i in range(w.ndim) if i != channel_axis)
        absmax = np.abs(w).max(axis=others)
        want_scale, want_zp = symmetric_int8(absmax)
        assert scale.shape == (w.shape[channel_axis],) and w.shape[channel_axis] > 1, name
        assert q.zp_type[node.input[2]] == TensorProto.INT8
        np.testing.assert_array_equal(scale, want_scale, err_msg=name)
        np.testing.assert_array_equal(zp, want_zp, err_msg=name)
        stored = q.init.get(node.input[0])
        if stored is not None and stored.dtype == np.int8:  # cpu: the int8 weights themselves
            shape = [1] * w.ndim
            shape[channel_axis] = -1
            expected = np.clip(np.round(w / scale.reshape(shape)), -127, 127)  # round half to even, as ORT
            assert np.abs(stored.astype(np.int64) - expected).max() <= 1, name
            assert np.abs(stored).max() == 127  # each channel's largest weight gets the top level


def test_seven_bit_weights_use_levels_minus_64_to_64_and_keep_the_activations(
    fp32_and_ranges: tuple[Path, Ranges], written: dict[str, Path], tmp_path: Path
) -> None:
    """``weight_bits=7`` (ONNX Runtime's reduce_range): scale = absmax / 64 per channel, |q| <= 64,
    each channel's largest weight at 64; activations exactly as the 8-bit cpu model's."""
    fp32, ranges = fp32_and_ranges
    seven = write_qdq(fp32, ranges, "cpu", tmp_path / "r20.cpu7.onnx", weight_bits=7).path
    weights = fp32_weights(fp32)
    q7, q8 = Quantized(seven), Quantized(written["cpu"])
    dq = q7.weight_dq(weights)
    convs = [n for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    assert {n.input[1] for n in convs} <= set(dq)
    for name, node in dq.items():
        w = weights[name]
        scale, zp, axis = q7.params(node)
        channel_axis = 0 if w.ndim == 4 else axis
        assert channel_axis is not None
        absmax = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != channel_axis))
        want = (2 * absmax.astype(np.float32).astype(np.float64) / 128).astype(np.float32)
        np.testing.assert_array_equal(scale, want, err_msg=name)
        np.testing.assert_array_equal(zp, np.zeros_like(zp), err_msg=name)
        stored = q7.init[node.input[0]]
        assert stored.dtype == np.int8
        per_channel = np.abs(stored.astype(np.int64)).max(
            axis=tuple(i for i in range(w.ndim) if i != channel_axis)
        )
        assert per_channel.max() == 64 and (per_channel[absmax > 0] == 64).all(), name
    a7, a8 = q7.activation_q(), q8.activation_q()
    assert set(a7) == set(a8)
    for tensor, node in a7.items():
        for got, want in zip(q7.params(node)[:2], q8.params(a8[tensor])[:2], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=tensor)
    meta = {p.key: p.value for p in onnx.load(str(seven)).metadata_props}
    import json

    assert json.loads(meta["edgeres.quantization"])["layout"]["weight_bits"] == 7


def test_seven_bit_weights_are_for_the_cpu_layouts_only(
    fp32_and_ranges: tuple[Path, Ranges], tmp_path: Path
) -> None:
    from edgeres.errors import UsageError

    fp32, ranges = fp32_and_ranges
    with pytest.raises(UsageError, match="the tensorrt layout has 8-bit weights only"):
        write_qdq(fp32, ranges, "tensorrt", tmp_path / "t.onnx", weight_bits=7)
    with pytest.raises(UsageError, match="weight bits must be 8 or 7, got 6"):
        write_qdq(fp32, ranges, "cpu", tmp_path / "c.onnx", weight_bits=6)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())
    seven = write_qdq(fp32, ranges, "openvino", tmp_path / "o.onnx", weight_bits=7).path
    weights = [
        numpy_helper.to_array(t)
        for t in onnx.load(str(seven)).graph.initializer
        if t.data_type == TensorProto.INT8 and len(t.dims) == 4
    ]
    assert weights and max(int(np.abs(w).max()) for w in weights) <= 64
