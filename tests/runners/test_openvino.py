"""The OpenVINO runner on small real models: agreement with ONNX Runtime, its settings, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeres.errors import EdgeresError, MissingDependencyError, UsageError
from edgeres.runners import OnnxRuntimeRunner, make_runner
from edgeres.runners import registry as runner_registry

ov = pytest.importorskip("openvino", reason="OpenVINO not installed")

from edgeres.runners.openvino_runner import OpenVinoRunner, compile_config, ov_message  # noqa: E402
from tests.quantize.test_qdq import Batches  # noqa: E402

SIZE = 16


def _images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, SIZE, SIZE)) * 0.5 + 0.3).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """resnet20 (random weights and BatchNorm) as FP32 ONNX, FP16 ONNX, both INT8 layouts and IR."""
    import torch

    from edgeres.export.fold import randomize_batchnorm
    from edgeres.export.onnx_export import export_onnx
    from edgeres.metadata import ModelMeta, Preprocessing
    from edgeres.models import get_model
    from edgeres.quantize.collect import collect_ranges
    from edgeres.quantize.qdq import write_qdq
    from edgeres.quantize.settings import CalibrationSettings

    folder = tmp_path_factory.mktemp("openvino")
    torch.manual_seed(2)
    net = get_model("resnet20", num_classes=10)
    randomize_batchnorm(net, seed=2)
    meta = ModelMeta(arch="resnet20", num_classes=10, preprocessing=Preprocessing(input_size=(SIZE, SIZE)))
    fp32 = export_onnx(net.eval(), meta, folder / "r20.onnx", exporter="torchscript", verify=False).path
    calib = Batches([_images(16, seed) for seed in range(4)])
    ranges = collect_ranges(fp32, calib, CalibrationSettings(method="minmax"), progress=False).ranges
    found = {"fp32": fp32}
    for target in ("cpu", "tensorrt"):
        found[target] = write_qdq(fp32, ranges, target, folder / f"r20.{target}.onnx").path
    ov.save_model(ov.Core().read_model(str(fp32)), str(folder / "r20.xml"))
    found["ir"] = folder / "r20.xml"
    return found


def test_fp32_agrees_with_onnxruntime(models: dict[str, Path]) -> None:
    x = _images(5, seed=10)
    with OnnxRuntimeRunner(models["fp32"], threads=1) as o, OpenVinoRunner(models["fp32"], threads=1) as v:
        assert (v.name, v.device, v.precision, v.input_name) == ("openvino", "cpu", "fp32", o.input_name)
        assert v.input_shape == o.input_shape
        expected, got = o.infer(x), v.infer(x)
        assert got.dtype == np.float32 and got.shape == (5, 10)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
        assert not np.shares_memory(v.infer(x[:1]), v.infer(x[1:2]))  # each result is its own copy


@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_qdq_int8_agrees_with_onnxruntime(models: dict[str, Path], target: str) -> None:
    x = _images(64, seed=20)
    with OnnxRuntimeRunner(models[target], threads=1) as o, OpenVinoRunner(models[target], threads=1) as v:
        assert v.precision == o.precision == "int8"
        ort_int8, ov_int8 = o.infer(x), v.infer(x)
    with OnnxRuntimeRunner(models["fp32"], threads=1) as f:
        fp32 = f.infer(x)
    agree = float(np.mean(ort_int8.argmax(1) == ov_int8.argmax(1)))
    from edgeres.sysinfo import int8_pairs_saturate

    if target == "tensorrt" and agree < 0.9 and int8_pairs_saturate():
        # An x86 CPU without VNNI: OpenVINO shifts the tensorrt layout's s8 activations to u8 and
        # adds u8 x s8 pairs in int16, which saturates with 8-bit weights (sparse large errors from
        # the first Conv on); ONNX Runtime runs that layout exactly. See edgeres.quantize.saturation.
        pytest.xfail(f"OpenVINO saturates the tensorrt layout's int8 sums on this CPU ({agree:.0%})")
    assert agree >= 0.9, f"OpenVINO and ONNX Runtime agree on {agree:.0%} of the INT8 predictions"
    # INT8, not a float fallback: OpenVINO's logits sit near ORT's INT8 ones, not merely near FP32's
    scale = float(np.abs(fp32).max())
    assert np.abs(ov_int8 - ort_int8).mean() < np.abs(fp32 - ort_int8).mean() + 0.05 * scale


def test_fp16_onnx_runs(models: dict[str, Path], tmp_path: Path) -> None:
    from edgeres.engine.fp16 import convert_fp16

    fp16 = convert_fp16(models["fp32"], tmp_path / "r20.fp16.onnx")
    x = _images(3, seed=30)
    with OnnxRuntimeRunner(models["fp32"], threads=1) as o, OpenVinoRunner(fp16, threads=1) as v:
        assert v.precision == "fp16"
        expected = o.infer(x)
        np.testing.assert_allclose(
            v.infer(x), expected, rtol=0, atol=2e-2 * max(1.0, float(np.abs(expected).max()))
        )


def test_ir_round_trip(models: dict[str, Path]) -> None:
    x = _images(4, seed=40)
    assert runner_registry.backend_for_file(models["ir"]) == "openvino"
    ir = make_runner(models["ir"], threads=1)  # auto: .xml goes to openvino
    with ir, OpenVinoRunner(models["fp32"], threads=1) as onnx_runner:
        assert isinstance(ir, OpenVinoRunner) and ir.precision == "fp32"  # f16-stored weights, f32 compute
        assert ir.input_shape == onnx_runner.input_shape
        np.testing.assert_allclose(ir.infer(x), onnx_runner.infer(x), rtol=0, atol=1e-2)


def test_qdq_ir_reads_as_int8(models: dict[str, Path], tmp_path: Path) -> None:
    ir = tmp_path / "r20.int8.xml"
    ov.save_model(ov.Core().read_model(str(models["cpu"])), str(ir))
    with OpenVinoRunner(ir) as runner:
        assert runner.precision == "int8"


def test_fp32_means_f32_and_threads_are_set(models: dict[str, Path]) -> None:
    with OpenVinoRunner(models["fp32"], threads=1) as runner:
        assert runner.property("INFERENCE_PRECISION_HINT") == ov.Type.f32
        assert int(runner.property("INFERENCE_NUM_THREADS")) == 1
        assert str(runner.property("PERFORMANCE_HINT")) == "LATENCY"
        assert runner.effective_precision_hint == "f32"
    with OpenVinoRunner(models["fp32"], threads=2) as runner:
        assert int(runner.property("INFERENCE_NUM_THREADS")) == 2


def test_compile_config() -> None:
    assert compile_config("CPU") == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    assert compile_config("GPU.1", threads=3, streams=2, performance_hint="throughput") == {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": "3",
        "NUM_STREAMS": "2",
    }
    assert compile_config("CPU", precision_hint="bf16")["INFERENCE_PRECISION_HINT"] == "bf16"
    assert "INFERENCE_PRECISION_HINT" not in compile_config("NPU")  # the NPU picks its own
    assert compile_config("AUTO", precision_hint="f16")["INFERENCE_PRECISION_HINT"] == "f16"


def test_bf16_is_its_own_labelled_variant(models: dict[str, Path]) -> None:
    asked = OpenVinoRunner(models["fp32"], precision_hint="bf16")
    assert asked.precision == "bf16" and "bf16" in asked.describe()
    with asked:
        compiled = asked.property("INFERENCE_PRECISION_HINT")
        # the label is what the CPU compiled: bf16 where it has bf16, else f32 said as fp32
        assert asked.precision == {ov.Type.bf16: "bf16", ov.Type.f32: "fp32"}[compiled]
        assert asked.describe() == f"openvino on cpu ({asked.precision})"
    assert make_runner(models["fp32"], "openvino", precision="bf16").precision_hint == "bf16"  # type: ignore[attr-defined]
    assert OpenVinoRunner(models["cpu"], precision_hint="bf16").precision == "int8+bf16"


def test_throughput_mode_and_streams(models: dict[str, Path]) -> None:
    with OpenVinoRunner(models["fp32"], performance_hint="throughput", streams=2, threads=2) as runner:
        assert str(runner.property("PERFORMANCE_HINT")) == "THROUGHPUT"
        assert int(runner.property("NUM_STREAMS")) == 2
        assert runner.infer(_images(2, seed=50)).shape == (2, 10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threads": 0}, "threads must be at least 1"),
        ({"streams": 0}, "streams must be at least 1"),
        ({"performance_hint": "fast"}, "unknown performance hint 'fast'; use latency or throughput"),
        ({"precision_hint": "int4"}, "unknown precision hint 'int4'"),
    ],
)
def test_bad_settings(models: dict[str, Path], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        OpenVinoRunner(models["fp32"], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", ["NPU", "GPU.7", "cuda", "AUTO:NPU,CPU"])
def test_absent_device_names_the_available_ones(models: dict[str, Path], device: str) -> None:
    have = ov.Core().available_devices
    if device.split(":")[-1].split(",")[0] in have:
        pytest.skip(f"{device} is present here")
    with pytest.raises(UsageError) as info:
        OpenVinoRunner(models["fp32"], device=device).activate()
    text = str(info.value)
    assert "\n" not in text and "has no device" in text and f"available: {', '.join(have)}" in text


def test_auto_device_runs(models: dict[str, Path]) -> None:
    with OpenVinoRunner(models["fp32"], device="auto:cpu", threads=1) as runner:
        assert runner.device == "auto:cpu" and runner.device.split(":")[0] == "auto"
        assert runner.infer(_images(1, seed=60)).shape == (1, 10)


def test_missing_and_damaged_files(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        OpenVinoRunner(tmp_path / "missing.onnx").activate()
    with pytest.raises(UsageError, match="does not exist"):
        make_runner(tmp_path / "missing.xml")
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(models["fp32"].read_bytes()[:500])
    with pytest.raises(EdgeresError) as info:
        OpenVinoRunner(damaged).activate()
    text = str(info.value)
    assert "\n" not in text and "is not a model OpenVINO can read" in text and "Exception from" not in text
    assert "re-export it with edgeres" in text


def test_ir_without_its_bin(models: dict[str, Path], tmp_path: Path) -> None:
    lone = tmp_path / "lone.xml"
    lone.write_text(models["ir"].read_text())
    with pytest.raises(UsageError) as info:
        make_runner(lone).activate()
    assert str(info.value) == "OpenVINO IR 'lone.xml' needs its weights 'lone.bin' beside it"


def _onnx_model(path: Path, inputs: list[tuple[str, list[int]]], reduce_axes: list[int] | None) -> Path:
    value_infos = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    if reduce_axes is None:
        nodes = [helper.make_node("Relu", [inputs[0][0]], ["y"])]
    else:
        axes = helper.make_tensor("axes", TensorProto.INT64, [len(reduce_axes)], reduce_axes)
        nodes = [helper.make_node("ReduceSum", [inputs[0][0], "axes"], ["y"], keepdims=0)]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(
        nodes, "g", value_infos, [out], initializer=[] if reduce_axes is None else [axes]
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(
    ("inputs", "axes", "match"),
    [
        ([("a", [1, 3, 4, 4]), ("b", [1, 3, 4, 4])], [2, 3], "it has inputs a: f32 \\(1, 3, 4, 4\\), b: "),
        ([("a", [1, 12])], [1], "edgeres needs one 4-D float input"),
        (
            [("a", [1, 3, 4, 4])],
            None,
            "it has outputs y: \\(1, 3, 4, 4\\); edgeres needs one \\(N, classes\\)",
        ),
    ],
    ids=["two-inputs", "2-D-input", "4-D-output"],
)
def test_not_a_classifier(
    tmp_path: Path, inputs: list[tuple[str, list[int]]], axes: list[int] | None, match: str
) -> None:
    path = _onnx_model(tmp_path / "odd.onnx", inputs, axes)
    with pytest.raises(UsageError, match=f"model odd.onnx is not an image classifier: .*{match}"):
        OpenVinoRunner(path).activate()


def test_engine_file_is_refused(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(UsageError, match="is a TensorRT engine; run it with the tensorrt backend"):
        make_runner(engine, "openvino")


def test_missing_openvino_is_one_line(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_registry, "available", lambda name: name != "openvino")
    with pytest.raises(MissingDependencyError) as info:
        make_runner(models["ir"])
    text = str(info.value)
    assert "\n" not in text and "needs OpenVINO" in text and "pip install edgeres[openvino]" in text


def test_ov_message_skips_source_locations() -> None:
    exc = RuntimeError(
        "Exception from src/inference/src/cpp/core.cpp:84:\n"
        "Check 'x' failed at src/frontends/common/src/frontend.cpp:117:\n"
        'FrontEnd API failed with GeneralFailure:\nir: Could not open the file: "m.xml"\n\n'
    )
    assert ov_message(exc) == 'ir: Could not open the file: "m.xml"'
    assert ov_message(RuntimeError("")) == "RuntimeError"


def test_bench_runs_on_openvino(run_cli: Any, models: dict[str, Path]) -> None:
    quick = ("--iters", "3", "--duration", "0", "--warmup-ms", "0", "--warmup", "1", "--threads", "1")
    r = run_cli("bench", str(models["fp32"]), str(models["ir"]), "--backend", "openvino", *quick)
    assert r.code == 0, r.out
    rows = [line.split() for line in r.out.splitlines() if line.startswith("r20.")]
    assert [(row[0], row[1], row[2], row[3]) for row in rows] == [
        ("r20.onnx", "openvino", "cpu", "fp32"),
        ("r20.xml", "openvino", "cpu", "fp32"),
    ]
    absent = run_cli("bench", str(models["ir"]), "--backend", "openvino", "--device", "NPU", *quick)
    if "NPU" not in ov.Core().available_devices:
        assert absent.code == 1 and "OpenVINO has no device 'NPU' here; available: " in absent.out
    refused = run_cli("bench", str(models["fp32"]), "--backend", "onnxruntime", "--device", "NPU", *quick)
    assert refused.code == 2 and "unknown device 'NPU'; use cpu or cuda" in refused.out + refused.err


def test_compile_failure_is_one_line(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "Exception from src/inference/src/cpp/core.cpp:109:\n"
            "Exception from src/plugins/intel_cpu/src/node.cpp:1522:\nUnsupported operation Foo\n"
        )

    monkeypatch.setattr(ov.Core, "compile_model", refuse)
    with pytest.raises(EdgeresError) as info:
        OpenVinoRunner(models["fp32"]).activate()
    assert str(info.value) == "OpenVINO cannot compile 'r20.onnx' for CPU: Unsupported operation Foo"


def test_factory_maps_precision_to_the_hint(models: dict[str, Path]) -> None:
    runners = {p: make_runner(models["fp32"], "openvino", precision=p) for p in ("fp32", "bf16", "fp16")}
    assert {p: r.precision_hint for p, r in runners.items()} == {"fp32": None, "bf16": "bf16", "fp16": "f16"}  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="unknown precision 'int8' for openvino; use fp32, bf16 or fp16"):
        make_runner(models["fp32"], "openvino", precision="int8")


def test_batches_of_changing_size_each_get_their_own_answer(models: dict[str, Path]) -> None:
    """The runner fills one input tensor per shape in place: a new shape, or the caller changing its
    array afterwards, must not leak into another call's logits."""
    x = _images(5, seed=40)
    with OpenVinoRunner(models["cpu"], threads=1) as v, OnnxRuntimeRunner(models["fp32"], threads=1) as o:
        whole = v.infer(x)
        for part in (x[:2], x[2:5], x[:2], x[4:5]):
            got = v.infer(part)
            assert got.shape == (len(part), 10)
        np.testing.assert_array_equal(v.infer(x[2:5]), whole[2:5])
        # the same shape again and again: each call its own logits, none overwritten by the next
        kept = [v.infer(x[i : i + 1]) for i in range(5)]
        for i, logits in enumerate(kept):
            np.testing.assert_array_equal(logits, whole[i : i + 1])
        y = x.copy()
        first = v.infer(y)
        y[:] = 0  # the caller reuses its buffer
        np.testing.assert_array_equal(first, whole)
        assert not np.array_equal(v.infer(y), whole)
        assert o.infer(x).shape == whole.shape
