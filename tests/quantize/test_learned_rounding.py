"""Learned rounding (AdaRound): the written model quantizes to exactly the learned integers, the
integers reconstruct each layer's FP32 output better than nearest rounding, and an interrupted
run resumes from the layers its calibration cache keeps.

The model is the fragile resnet20 of the quantization fixtures (real weights and BatchNorm
statistics, its own digits as data); few steps per layer keep the tests to seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.quantize.conftest import FragileModel

TARGETS = ("cpu", "tensorrt", "openvino")
FAST = {"iterations": 60, "batch": 256, "memory_mb": 8}


def _images(data: str, n: int = 96) -> list[np.ndarray]:
    from edgeres.data import BatchReader, open_source
    from edgeres.metadata import Preprocessing

    reader = BatchReader(open_source(data), np.arange(n), Preprocessing(input_size=(32, 32)), "input", 32)
    return [b["input"] for b in reader]


@pytest.fixture(scope="module")
def images(fragile_model: FragileModel) -> list[np.ndarray]:
    return _images(fragile_model.data)


@pytest.fixture(scope="module")
def plain(fragile_model: FragileModel, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The prepared float model, and per layout the plain Q/DQ model and ranges (8-bit weights)."""
    from edgeres.quantize.cache import load_cache
    from edgeres.quantize.qdq import prepare_onnx, write_qdq
    from edgeres.quantize.workflow import QuantizeOptions, quantize

    out = tmp_path_factory.mktemp("rounding")
    opts = QuantizeOptions(
        calib=fragile_model.data,
        target="cpu",
        calib_size=96,
        progress=False,
        bias_correction=False,
        weight_bits=8,
    )
    report = quantize(fragile_model.fp32, out / "m.onnx", opts)
    ranges, _ = load_cache(report.cache)
    prepared = prepare_onnx(fragile_model.fp32, out / "prepared.onnx")
    qdq = {t: write_qdq(prepared, ranges, t, out / f"plain.{t}.onnx").path for t in TARGETS}
    return {"prepared": prepared, "ranges": ranges, "qdq": qdq, "out": out}


@pytest.mark.parametrize("target", TARGETS)
def test_the_written_model_requantizes_to_the_learned_integers(
    plain: dict, images: list[np.ndarray], target: str, tmp_path: Path
) -> None:
    import onnx

    from edgeres.quantize.adaround import RoundingSettings
    from edgeres.quantize.adaround_data import rounding_layers
    from edgeres.quantize.learned_rounding import learn_rounding, written_integers
    from edgeres.quantize.qdq import write_qdq
    from edgeres.quantize.targets import faithful_to

    rounded = tmp_path / "rounded.onnx"
    done = learn_rounding(
        plain["prepared"], plain["qdq"][target], images, rounded,
        settings=RoundingSettings(**FAST), disabled_optimizers=faithful_to(target),
    )  # fmt: skip
    assert len(done.layers) == 20
    written = write_qdq(rounded, plain["ranges"], target, tmp_path / "m.onnx").path
    # re-quantize the written float weights with the written scales, as ONNX Runtime and TensorRT do
    qdq = onnx.load(str(written))
    layers = {layer.node: layer for layer in rounding_layers(onnx.load(str(rounded)), qdq, 127)}
    nearest = {
        layer.node: layer.nearest for layer in rounding_layers(onnx.load(str(plain["prepared"])), qdq, 127)
    }
    flipped = 0
    for node, q in done.integers.items():
        np.testing.assert_array_equal(written_integers(qdq, layers[node]), q, err_msg=node)
        flipped += int((q != nearest[node]).sum())
        assert np.abs(q - nearest[node]).max() <= 1  # up or down, never further
    assert flipped > 100  # the rounding did change


def test_learned_integers_reconstruct_each_layer_better_than_nearest(
    plain: dict, images: list[np.ndarray]
) -> None:
    """Measured here, on every layer's own input and FP32 output, not taken from the optimizer."""
    import onnx
    import torch

    from edgeres.quantize.adaround import RoundingSettings, learn_layer
    from edgeres.quantize.adaround_data import rounding_layers
    from edgeres.quantize.adaround_walk import LayerSampler

    fp32, qdq = onnx.load(str(plain["prepared"])), onnx.load(str(plain["qdq"]["cpu"]))
    layers = rounding_layers(fp32, qdq, 127)
    settings = RoundingSettings(iterations=200, batch=256, memory_mb=8)
    gains = []
    chosen = (0, 5, len(layers) - 1)  # the stem, a block's conv, the classifier (Gemm)
    sampler = LayerSampler(qdq, fp32, layers, images, max_patches=[4000] * len(layers), wanted=chosen, seed=0)
    samples = {}
    with sampler:
        for i in chosen:
            samples[i] = sampler.samples(i)
    for i in chosen:
        layer = layers[i]
        x, y = samples[i]
        q, record = learn_layer(layer, x, y, settings, i)
        scale = torch.from_numpy(layer.scale)[:, None]
        bias = torch.from_numpy(layer.bias.astype(np.float32))
        target = torch.relu(y) if layer.relu else y

        def error(ints: np.ndarray, x=x, scale=scale, bias=bias, layer=layer, target=target) -> float:
            # written out here, not the module's own
            out = x @ (torch.from_numpy(ints.astype(np.float32)) * scale).T
            out = out * float(layer.attrs.get("alpha", 1.0)) + bias
            out = torch.relu(out) if layer.relu else out
            return float(((out - target) ** 2).sum(1).mean())

        nearest, learned = error(layer.nearest), error(q)
        assert record.error_nearest == pytest.approx(nearest, rel=1e-4)
        assert record.error_learned == pytest.approx(learned, rel=1e-4)
        assert learned < nearest, layer.node
        gains.append(1 - learned / nearest)
    assert max(gains) > 0.05


def test_sampled_patches_and_outputs_line_up_with_the_model(plain: dict, images: list[np.ndarray]) -> None:
    """Fed the FP32 model's own input, the patches times the FP32 weights give its FP32 output at
    the sampled positions: padding, stride and position order are those ONNX Runtime computes."""
    import dataclasses

    import onnx
    import torch

    from edgeres.quantize.adaround_data import rounding_layers
    from edgeres.quantize.adaround_walk import LayerSampler

    fp32, qdq = onnx.load(str(plain["prepared"])), onnx.load(str(plain["qdq"]["cpu"]))
    inputs = {n.name: n.input[0] for n in fp32.graph.node}
    layers = rounding_layers(fp32, qdq, 127)
    strided = [layer for layer in layers if list(layer.attrs.get("strides", [1, 1])) != [1, 1]]
    assert strided
    own = [
        dataclasses.replace(layer, data=inputs[layer.node]) for layer in (layers[0], strided[0], layers[-1])
    ]
    with LayerSampler(fp32, fp32, own, images, max_patches=[2000] * 3, wanted=range(3), seed=0) as sampler:
        samples = [sampler.samples(i) for i in range(3)]
    for layer, (x, y) in zip(own, samples, strict=True):
        assert x.shape[0] == y.shape[0] >= min(2000, len(images) * 1)
        w = torch.from_numpy(layer.w.astype(np.float32))
        out = x @ w.T * float(layer.attrs.get("alpha", 1.0)) + torch.from_numpy(layer.bias.astype(np.float32))
        np.testing.assert_allclose(out.numpy(), y.numpy(), rtol=1e-3, atol=1e-3 * float(y.abs().max()))


def test_every_layer_learns_to_reproduce_the_float_model_as_given(
    plain: dict, images: list[np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The targets of a later layer are the FP32 model's outputs, not those of a model whose
    earlier weights already carry their integers, also when a rerun takes the first layers'
    integers from the cache."""
    import onnx

    from edgeres.quantize import learned_rounding
    from edgeres.quantize.adaround import RoundingSettings, bits_of
    from edgeres.quantize.adaround_data import rounding_layers
    from edgeres.quantize.adaround_walk import LayerSampler

    fp32, qdq = onnx.load(str(plain["prepared"])), onnx.load(str(plain["qdq"]["cpu"]))
    layers = rounding_layers(fp32, qdq, 127)
    # cached integers rounded the other way than nearest: their weights differ from FP32's
    stored = {layer.node: 1 - bits_of(layer, layer.nearest) for layer in layers[:5]}
    seen: dict[str, np.ndarray] = {}
    real = learned_rounding.learn_layer

    def recording(layer, x, y, settings, index):  # type: ignore[no-untyped-def]
        seen[layer.node] = y.numpy().copy()
        return real(layer, x, y, settings, index)

    monkeypatch.setattr(learned_rounding, "learn_layer", recording)
    settings = RoundingSettings(**FAST)
    done = learned_rounding.learn_rounding(
        plain["prepared"], plain["qdq"]["cpu"], images, tmp_path / "r.onnx", settings=settings, stored=stored
    )
    assert done.reused_layers == 5 and len(seen) == 15
    patches = [learned_rounding._max_patches(layer, settings) for layer in layers]
    with LayerSampler(qdq, fp32, layers, images, max_patches=patches, wanted=[5, 19], seed=0) as pristine:
        for k in (5, 19):
            want = pristine.samples(k)[1].numpy()  # float32 sums of another graph: ulps apart
            np.testing.assert_allclose(seen[layers[k].node], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_the_weights_that_set_a_channel_scale_keep_their_integer() -> None:
    """Even when the output would be better with them rounded down: their scale would change."""
    import torch

    from edgeres.quantize.adaround import RoundingSettings, learn_layer
    from edgeres.quantize.adaround_data import RoundingLayer

    rng = np.random.default_rng(0)
    channels, inputs = 4, 16
    w = rng.uniform(-1, 1, (channels, inputs))
    # every channel's absmax, where float32's w / s falls just below 127: floor gives 126, so
    # 126 is a choice, as it is for about half the channels of a real model
    top = rng.uniform(1.5, 3.0, 2000)
    below = top[top.astype(np.float32) / (top / 127).astype(np.float32) < 127]
    assert len(below) >= channels
    w[:, 3] = below[:channels]
    scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    layer = RoundingLayer(
        node="fc", op="Gemm", data="x", output="y", w=w, shape=(channels, inputs), axis=0, scale=scale,
        qmin=-127, qmax=127, bias=np.zeros(channels), attrs={"transB": 1}, relu=False, weight="w",
    )  # fmt: skip
    truth = w.copy()
    truth[:, 3] = w[:, 3] * 120 / 127  # the output wants these weights 7 steps lower
    x = torch.from_numpy(rng.normal(size=(4096, inputs)).astype(np.float32))
    y = x @ torch.from_numpy(truth.astype(np.float32)).T
    q, record = learn_layer(layer, x, y, RoundingSettings(iterations=400, lr=0.1, batch=512), 0)
    np.testing.assert_array_equal(q[:, 3], 127)
    assert layer.fixed[:, 3].all() and layer.fixed.sum() == channels
    assert record.flipped > 0  # the other weights did move, so the test could have seen it


def test_a_layer_whose_learned_rounding_is_worse_keeps_nearest() -> None:
    """Too few steps to settle: the result may be worse than nearest, and is then not used."""
    import torch

    from edgeres.quantize.adaround import RoundingSettings, learn_layer
    from edgeres.quantize.adaround_data import RoundingLayer

    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (8, 32))
    scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    layer = RoundingLayer(
        node="fc", op="Gemm", data="x", output="y", w=w, shape=(8, 32), axis=0, scale=scale,
        qmin=-127, qmax=127, bias=np.zeros(8), attrs={"transB": 1}, relu=False, weight="w",
    )  # fmt: skip
    x = torch.from_numpy(rng.normal(size=(2048, 32)).astype(np.float32))
    y = x @ torch.from_numpy(w.astype(np.float32)).T
    # a huge step size on few steps scatters the rounding: worse than nearest for the exact target
    q, record = learn_layer(layer, x, y, RoundingSettings(iterations=3, lr=50.0, warmup=0.0), 0)
    assert record.error_learned is not None and record.error_nearest is not None
    assert record.error_learned <= record.error_nearest
    np.testing.assert_array_equal(q, layer.nearest)
    assert record.flipped == 0.0
