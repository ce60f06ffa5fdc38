"""Learned rounding's samples come from one pass of each model, cut layer by layer: they must be
exactly what running the whole partly rounded Q/DQ model, and the untouched float model, gives.

The reference here runs the full model with the layer's input as an extra output (nothing of
the sampler's own graph cutting) and cuts patches at the positions the sampler drew.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeres.quantize.adaround_walk import RUN_IMAGES
from tests.quantize.test_learned_rounding import TARGETS, images, plain  # noqa: F401  (fixtures)


def _run_full(model, names: list[str], batches: list[np.ndarray], disabled: tuple[str, ...] = ()) -> list:  # type: ignore[no-untyped-def]
    """``names`` from the whole ``model`` (ModelProto) over every image, concatenated."""
    import onnx
    from onnx import helper

    from edgeres.quantize.bias_means import cpu_session

    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    session = cpu_session(m, disabled, arena=False)
    feed = session.get_inputs()[0].name
    # as many images a run as the sampler feeds, so float32 sums add up in the same order
    step = RUN_IMAGES
    outs = [session.run(names, {feed: b[s : s + step]}) for b in batches for s in range(0, len(b), step)]
    return [np.concatenate([o[i] for o in outs]) for i in range(len(names))]


@pytest.mark.parametrize("target", TARGETS)
def test_samples_are_those_of_the_whole_partly_rounded_model(
    plain: dict,  # noqa: F811
    images: list[np.ndarray],  # noqa: F811
    target: str,
) -> None:
    """Layer after layer, with other integers set in the Q/DQ model as each is done: the inputs
    follow the new integers, the targets stay the float model's as given."""
    import onnx

    from edgeres.quantize.adaround_data import patch_rows, rounding_layers, set_layer_integers
    from edgeres.quantize.adaround_walk import LayerSampler
    from edgeres.quantize.targets import faithful_to

    fp32, qdq = onnx.load(str(plain["prepared"])), onnx.load(str(plain["qdq"][target]))
    pristine_fp32 = onnx.load(str(plain["prepared"]))
    layers = rounding_layers(fp32, qdq, 127)
    disabled = faithful_to(target)
    rng = np.random.default_rng(0)
    checked = 0
    with LayerSampler(
        qdq, fp32, layers, images, max_patches=[3000] * len(layers), wanted=range(len(layers)), seed=0,
        disabled_optimizers=disabled,
    ) as sampler:  # fmt: skip
        for k, layer in enumerate(layers):
            x, y = sampler.samples(k)
            (data,) = _run_full(qdq, [layer.data], images, disabled)
            (out,) = _run_full(pristine_fp32, [layer.output], images)
            out = out.reshape(len(out), out.shape[1], -1)
            pick = sampler.picks[k]
            want_x = patch_rows(layer, data, pick, out.shape[2])
            want_y = (
                np.take_along_axis(out, pick[:, None, :], axis=2).transpose(0, 2, 1).reshape(-1, out.shape[1])
            )
            # float32 fake quantization (tensorrt; the openvino layout's float residual sums) in a
            # graph ONNX Runtime fuses otherwise may land a value on the other side of a rounding
            # boundary: one step, at a handful of values
            off = np.abs(x.numpy() - want_x.numpy()) > 1e-6 * (1 + np.abs(want_x.numpy()))
            assert off.mean() < (1e-9 if target == "cpu" else 1e-3), (layer.node, int(off.sum()), off.size)
            # the float model cut down may fuse otherwise: a few ulps of its largest output
            tol = 1e-5 * float(np.abs(want_y).max())
            np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-5, atol=tol, err_msg=layer.node)
            # the next layers must see these integers, not the plain ones
            moved = np.clip(layer.nearest + rng.integers(-1, 2, layer.nearest.shape), layer.qmin, layer.qmax)
            set_layer_integers(qdq, layer, moved)
            checked += 1
    assert checked == len(layers) == 20


def _disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_rerun_draws_the_same_positions_and_the_frontier_is_removed(
    plain: dict,  # noqa: F811
    images: list[np.ndarray],  # noqa: F811
) -> None:
    import onnx

    from edgeres.quantize.adaround_data import rounding_layers
    from edgeres.quantize.adaround_walk import LayerSampler

    def draw() -> tuple[np.ndarray, np.ndarray, Path]:
        fp32, qdq = onnx.load(str(plain["prepared"])), onnx.load(str(plain["qdq"]["cpu"]))
        layers = rounding_layers(fp32, qdq, 127)
        with LayerSampler(qdq, fp32, layers, images, max_patches=[500] * 20, wanted=[3, 7], seed=4) as s:
            s.samples(3)
            on_disk = _disk(s._tmp)
            assert s.frontier.bytes + s.targets.bytes == on_disk > 0  # what temp_mb reports
            x, _ = s.samples(7)
            assert s.frontier.bytes + s.targets.bytes == _disk(s._tmp)
            assert s.peak_bytes >= on_disk
            with pytest.raises(Exception, match="out of order"):
                s.samples(3)
            folder = s._tmp
            assert folder.is_dir()
        return s.picks[7], x.numpy(), folder

    a, xa, folder = draw()
    b, xb, _ = draw()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(xa, xb)
    assert not folder.exists()


def test_images_are_fed_in_runs_of_the_fixed_batch_whatever_the_batches_given() -> None:
    """Batches of 5, 7 and 3 images for a model exported at batch 4: three runs of 4, the rest
    left out; for a model of any batch size every image, at most 8 a run."""
    from edgeres.quantize.adaround_walk import LayerSampler

    batches = [np.full((n, 1), i, np.float32) for i, n in enumerate((5, 7, 3))]
    sampler = LayerSampler.__new__(LayerSampler)
    sampler.images, sampler.step, sampler.fixed, sampler.rows = batches, 4, 4, 12
    runs = list(sampler._chunks())
    assert [(row, len(p)) for row, p in runs] == [(0, 4), (4, 4), (8, 4)]
    np.testing.assert_array_equal(np.concatenate([p for _, p in runs])[:, 0], [0] * 5 + [1] * 7)
    sampler.step, sampler.fixed, sampler.rows = 8, 0, 15
    runs = list(sampler._chunks())
    assert [(row, len(p)) for row, p in runs] == [(0, 8), (8, 7)]
    np.testing.assert_array_equal(np.concatenate([p for _, p in runs])[:, 0], [0] * 5 + [1] * 7 + [2] * 3)


def test_the_frontier_carries_int8_where_the_layout_quantizes(
    plain: dict,  # noqa: F811
) -> None:
    """Activation DequantizeLinears run on both sides of a cut: the tensors that cross it are the
    int8 ones (a quarter of float's disk and reading), but what the graph computes in float."""
    import onnx

    from edgeres.quantize.adaround_data import rounding_layers
    from edgeres.quantize.adaround_walk import _Graph, _plan

    fp32, qdq = onnx.load(str(plain["prepared"])), onnx.load(str(plain["qdq"]["cpu"]))
    graph = _Graph(qdq.graph)
    segments = _plan(graph, rounding_layers(fp32, qdq, 127))
    crossing = {t for seg in segments for t in seg.writes}
    producers = {o: n.op_type for n in qdq.graph.node for o in n.output}
    kinds = [producers[t] for t in crossing]
    assert "DequantizeLinear" not in kinds  # always run again after the cut
    # int8 but for the option-A shortcuts' Slice, which reads the dequantized block input
    assert kinds.count("QuantizeLinear") > len(kinds) / 2 and set(kinds) <= {"QuantizeLinear", "Slice"}, kinds
    # every tensor read after a cut was written before it, and is dropped after its last reader
    written: set[str] = set()
    for seg in segments:
        assert set(seg.reads) <= written | graph.inputs
        written |= set(seg.writes)
        written -= set(seg.drops)
    assert written == set()  # nothing kept past its last reader
