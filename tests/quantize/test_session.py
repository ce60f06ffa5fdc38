"""The calibration session on real ONNX Runtime: blocked tensors hold the same values as the plain ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.errors import EdgeresError
from edgeres.quantize.session import calibration_session

TENSORS = ["x", "c1", "r1", "pool", "c2", "sum", "y"]


def conv_model(channels: int) -> onnx.ModelProto:
    """conv-relu, maxpool, conv, residual add, global pool: what ONNX Runtime runs blocked (16 channels)."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.2, name)

    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("MaxPool", ["r1"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Conv", ["pool", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
            helper.make_node("Add", ["c2", "pool"], ["sum"]),
            helper.make_node("GlobalAveragePool", ["sum"], ["y"]),
        ],
        "blocked",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", channels, 1, 1])],
        [
            weight("w1", channels, 3, 3, 3),
            weight("b1", channels),
            weight("w2", channels, channels, 3, 3),
            weight("b2", channels),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def values(channels: int, *, blocked: bool) -> tuple[list[str], dict[str, np.ndarray]]:
    session = calibration_session(conv_model(channels), TENSORS, Path("blocked.onnx"), blocked=blocked)
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    return session.outputs, dict(zip(session.tensors, session.run({"x": x}), strict=True))


def test_blocked_tensors_hold_the_same_values() -> None:
    outputs, blocked = values(32, blocked=True)
    if outputs == TENSORS:
        pytest.skip("ONNX Runtime runs no convolution in its blocked layout on this CPU")
    assert outputs[0] == "x"  # the input is no conv output: it stays as it is
    assert len(set(outputs) - set(TENSORS)) >= 4  # r1 (c1 fused with it), pool, c2, sum, y come blocked
    plain_outputs, plain = values(32, blocked=False)
    assert plain_outputs == TENSORS
    for name in TENSORS:
        assert blocked[name].size == plain[name].size, name
        # the same values in another order: a histogram cannot tell them apart
        np.testing.assert_array_equal(np.sort(blocked[name], axis=None), np.sort(plain[name], axis=None))


def test_channel_counts_with_padding_are_fetched_reordered() -> None:
    outputs, got = values(24, blocked=True)  # 24 is no multiple of 16: a blocked tensor would pad
    assert outputs == TENSORS
    assert got["c1"].shape == (2, 24, 16, 16)


def test_a_bad_feed_names_the_model() -> None:
    session = calibration_session(conv_model(16), ["c1"], Path("blocked.onnx"))
    with pytest.raises(EdgeresError, match=r"could not run blocked\.onnx on a calibration batch") as err:
        session.run({"x": np.zeros((1, 5, 16, 16), np.float32)})
    assert err.value.exit_code == 1


def test_models_too_large_to_save_whole_are_fetched_reordered(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeres.quantize import session as calibration

    monkeypatch.setattr(calibration, "_MAX_SAVED_BYTES", 0)  # as if over the 2 GB protobuf limit
    outputs, got = values(32, blocked=True)
    assert outputs == TENSORS
    assert got["c1"].shape == (2, 32, 16, 16)
