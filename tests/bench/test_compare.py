"""Ratios to the FP32 model and the caveats of `edgeres.bench.compare` (no model timed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeres.bench import BenchResult
from edgeres.bench.compare import (
    FP16_ON_CPU,
    OPENVINO_LAYOUT_ON_ORT,
    TENSORRT_LAYOUT_ON_CPU,
    caveat_for,
    fp32_reference,
    ratios_to_fp32,
)


def _row(model: str, precision: str, batch: int, times: list[float], streams: int = 1) -> BenchResult:
    return BenchResult.measured(
        model=model, backend="onnxruntime", device="cpu", precision=precision, batch=batch, threads=1,
        times_ms=times, streams=streams, wall_s=sum(times) / 1000,
    )  # fmt: skip


def test_ratios_are_medians_over_the_fp32_model_at_the_same_batch() -> None:
    rows = [
        _row("m.int8.onnx", "int8", 1, [1.0, 1.0, 9.0]),  # mean 3.67, median 1
        _row("m.onnx", "fp32", 1, [2.0, 2.0, 8.0]),  # mean 4, median 2
        _row("m.onnx", "fp32", 8, [10.0, 10.0, 10.0]),
        _row("m.int8.onnx", "int8", 8, [4.0, 5.0, 100.0]),
        _row("m.int8.onnx", "int8", 4, [1.0]),  # no fp32 row at batch 4
        _row("other.onnx", "fp32", 1, [1.0]),  # a second fp32 model is not the reference
        BenchResult("m.int8.onnx", "onnxruntime", "cpu", "int8", 16, error="boom"),
    ]
    assert fp32_reference(rows) == "m.onnx"  # the first fp32 model, not the first model
    assert ratios_to_fp32(rows) == [
        pytest.approx(0.5), pytest.approx(1.0), pytest.approx(1.0), pytest.approx(0.5), None,
        pytest.approx(0.5), None,
    ]  # fmt: skip
    assert ratios_to_fp32([_row("a.onnx", "int8", 1, [1.0])]) == [None]


def test_ratios_compare_the_same_streams() -> None:
    rows = [_row("m.onnx", "fp32", 1, [2.0]), _row("q.onnx", "int8", 1, [1.0], streams=2)]
    assert ratios_to_fp32(rows) == [pytest.approx(1.0), None]


def _onnx_with_target(path: Path, target: str | None) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2])],
    )  # fmt: skip
    model = helper.make_model(graph)
    if target is not None:
        model.metadata_props.add(key="edgeres.quantization", value=json.dumps({"target": target}))
    onnx.save(model, str(path))
    return path


def test_caveats(tmp_path: Path) -> None:
    trt = _onnx_with_target(tmp_path / "m.int8.onnx", "tensorrt")
    cpu = _onnx_with_target(tmp_path / "m.int8.cpu.onnx", "onnxruntime")
    plain = _onnx_with_target(tmp_path / "m.onnx", None)
    assert caveat_for(trt, "onnxruntime", "cpu", "int8") == TENSORRT_LAYOUT_ON_CPU
    assert caveat_for(trt, "onnxruntime", "cuda", "int8") is None  # on a GPU the layout is the right one
    assert caveat_for(cpu, "onnxruntime", "cpu", "int8") is None
    ov = _onnx_with_target(tmp_path / "m.int8.openvino.onnx", "openvino")
    assert caveat_for(ov, "onnxruntime", "cpu", "int8") == OPENVINO_LAYOUT_ON_ORT
    assert caveat_for(ov, "openvino", "cpu", "int8") is None  # on OpenVINO the layout is the right one
    assert caveat_for(plain, "onnxruntime", "cpu", "int8") is None
    assert caveat_for(plain, "onnxruntime", "cpu", "fp16") == FP16_ON_CPU
    assert caveat_for(plain, "onnxruntime", "cpu", "int8+fp16") == FP16_ON_CPU
    assert caveat_for(plain, "torch", "cuda:0", "fp16") is None
    assert caveat_for(plain, "onnxruntime", "cpu", "fp32") is None
    assert TENSORRT_LAYOUT_ON_CPU == "tensorrt layout: for engines; CPU time not representative"
