"""Streaming collection on real ONNX Runtime sessions: coverage, batching, memory, derived tensors."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.data import ArraySource, BatchReader
from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import Preprocessing
from edgeres.quantize.collect import (
    CalibrationResult,
    calibration_plan,
    collect_ranges,
    collect_statistics,
    compute_ranges,
)
from edgeres.quantize.settings import ACTIVATION_BUDGET_BYTES, METHODS, CalibrationSettings

PRE = Preprocessing(input_size=(8, 8), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
FLOAT_ACTIVATIONS = {"input", "c1", "r1", "c2", "sum", "r2", "pool", "gap", "flat", "logits"}


def tiny_model(path: Path, *, conv_output: bool = False) -> Path:
    """conv-relu-conv, residual add, relu, maxpool, global pool, flatten, gemm; plus constant-only nodes.

    ``conv_output``: the first conv's output is a graph output too, so the ReLU is not its only reader.
    """
    rng = np.random.default_rng(0)
    c1 = helper.make_tensor_value_info("c1", TensorProto.FLOAT, ["batch", 6, 8, 8])
    extra_outputs = [c1] if conv_output else []

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.5, name)

    nodes = [
        helper.make_node("Identity", ["w1_raw"], ["w1"]),  # computed from constants only: not calibrated
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["sum"]),
        helper.make_node("Relu", ["sum"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Shape", ["flat"], ["shape"]),  # int64: not calibrated
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5]), *extra_outputs],
        [
            init("w1_raw", 6, 3, 3, 3),
            init("b1", 6),
            init("w2", 6, 6, 3, 3),
            init("b2", 6),
            init("fc_w", 5, 6),
            init("fc_b", 5),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def images(n: int, seed: int = 0, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def reader_for(n: int, batch: int = 16, seed: int = 0, pre: Preprocessing = PRE) -> BatchReader:
    source = ArraySource(images(n, seed, pre.input_size[0]), None, (), description="random")
    return BatchReader(source, None, pre, "input", batch_size=batch)


def all_activations(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every calibrated tensor at once, the non-streaming way."""
    model = onnx.load(str(path))
    names = sorted(FLOAT_ACTIVATIONS - {"input", "logits"})
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(["logits", *names], {"input": x})
    return {"input": x, **dict(zip(["logits", *names], outputs, strict=True))}


def test_plan_covers_every_float_activation(tiny: Path) -> None:
    model = onnx.shape_inference.infer_shapes(onnx.load(str(tiny)))
    plan = calibration_plan(model)
    assert set(plan.tensors) == FLOAT_ACTIVATIONS  # not w1 (constant) nor shape (int64)
    assert plan.tensors[0] == "input"
    # c1 and sum are read by a ReLU alone: its output is fetched and they take its range
    assert dict(plan.derived) == {
        "c1": ("relu_output", "r1"),
        "sum": ("relu_output", "r2"),
        "flat": ("same", "gap"),
    }
    assert set(plan.fetched) == FLOAT_ACTIVATIONS - set(plan.derived)
    assert plan.nonnegative == {"r1", "r2"}
    assert calibration_plan(model, ["c1", "sum"]).fetched == ("c1", "sum")  # their ReLUs not wanted
    only = calibration_plan(model, ["r1", "flat"])
    assert only.fetched == ("r1", "flat") and not only.derived  # nothing to derive them from
    with pytest.raises(UsageError, match="cannot calibrate shape, w1: not a float activation"):
        calibration_plan(model, ["w1", "shape"])


def test_minmax_ranges_are_the_observed_extremes(tiny: Path) -> None:
    n = 40
    ranges = collect_ranges(
        tiny, reader_for(n, batch=16), CalibrationSettings("minmax"), progress=False
    ).ranges
    assert set(ranges) == FLOAT_ACTIVATIONS
    x = np.concatenate([b["input"] for b in reader_for(n, batch=n)])
    for name, value in all_activations(tiny, x).items():
        lo = 0.0 if name in ("c1", "sum") else float(value.min())  # they take their ReLU's range
        assert ranges[name].lo == pytest.approx(lo, rel=1e-5, abs=1e-6), name
        assert ranges[name].hi == pytest.approx(float(value.max()), rel=1e-5, abs=1e-6), name
    assert ranges["r1"].lo == 0.0 and ranges["r2"].lo == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_stays_inside_the_observed_range(tiny: Path, method: str) -> None:
    stats = collect_statistics(tiny, reader_for(48), progress=False)
    minmax, ranges = stats.ranges("minmax"), stats.ranges(method)  # type: ignore[arg-type]
    assert set(ranges) == set(minmax)
    for name, r in ranges.items():
        assert minmax[name].lo <= r.lo <= r.hi <= minmax[name].hi


def test_batching_does_not_change_the_statistics(tiny: Path) -> None:
    one = collect_statistics(
        tiny, reader_for(50, batch=50), CalibrationSettings(batch_size=50), progress=False
    )
    many = collect_statistics(
        tiny, reader_for(50, batch=8), CalibrationSettings(batch_size=3), progress=False
    )
    assert one.num_images == many.num_images == 50
    for name, h in one.histograms.items():
        g = many.histograms[name]
        assert (g.count, g.limits) == (h.count, h.limits), name
        assert g.min == pytest.approx(h.min, rel=1e-5, abs=1e-6) and g.max == pytest.approx(h.max, rel=1e-5)
        moved = np.abs(np.cumsum(g.abs_counts) - np.cumsum(h.abs_counts)).max()
        assert moved <= max(2, h.count * 1e-3), name


def test_a_relu_input_read_elsewhere_too_is_fetched(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "t.onnx", conv_output=True)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    plan = calibration_plan(model)
    assert plan.derived["r1"] == ("relu", "c1") and "c1" in plan.fetched


def test_a_relu_input_takes_the_relu_range(tiny: Path) -> None:
    stats = collect_statistics(tiny, reader_for(32), progress=False)
    assert stats.histograms["c1"] is stats.histograms["r1"]
    alone = collect_statistics(tiny, reader_for(32), tensors=["c1"], progress=False).histograms["c1"]
    assert alone.min < 0.0 == stats.histograms["c1"].min  # the real c1 has negative values ...
    assert stats.histograms["c1"].max == pytest.approx(alone.max, rel=1e-5)  # ... the same maximum


def test_derived_relu_matches_the_fetched_one(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "t.onnx", conv_output=True)
    derived = collect_statistics(path, reader_for(32), progress=False).histograms["r1"]
    fetched = collect_statistics(path, reader_for(32), tensors=["r1"], progress=False).histograms["r1"]
    assert (derived.count, derived.min, derived.limit) == (fetched.count, fetched.min, fetched.limit)
    assert derived.max == pytest.approx(fetched.max, rel=1e-5)  # two sessions may fuse differently
    moved = np.abs(np.cumsum(derived.abs_counts) - np.cumsum(fetched.abs_counts)).max()
    assert moved <= max(2, fetched.count * 1e-3)


def test_memory_does_not_grow_with_the_number_of_images(tiny: Path) -> None:
    settings = CalibrationSettings(batch_size=16)

    def peak(n: int) -> tuple[int, int]:
        reader = reader_for(n, batch=16)  # the images themselves are made before tracing
        tracemalloc.start()
        try:
            stats = collect_statistics(tiny, reader, settings, progress=False)
            return tracemalloc.get_traced_memory()[1], stats.nbytes
        finally:
            tracemalloc.stop()

    peak(16)  # warm-up: imports, caches
    small, small_bytes = peak(32)
    large, large_bytes = peak(640)
    # the histograms and nothing else: 7 of them (flat shares gap's, c1 and sum their ReLUs')
    assert small_bytes == large_bytes == (len(FLOAT_ACTIVATIONS) - 3) * 2 * 2048 * 8
    assert large < small * 1.3 + 64 * 1024, (small, large)  # a kept batch per step would add ~500 KiB


def test_a_plain_reader_without_rewind_or_len(tiny: Path) -> None:
    batches = [b for b in reader_for(20, batch=6)]

    class Plain:
        def get_next(self) -> dict[str, np.ndarray] | None:
            return batches.pop(0) if batches else None

    result = collect_ranges(tiny, Plain(), CalibrationSettings("entropy"), progress=False)
    assert isinstance(result, CalibrationResult)
    assert result.num_images == 20 and result.method == "entropy" and result.seconds > 0
    assert set(result.ranges) == FLOAT_ACTIVATIONS
    assert "tensors calibrated by entropy on 20 images" in result.summary()


def test_one_pass_serves_every_method(tiny: Path) -> None:
    reader = reader_for(24)
    stats = collect_statistics(tiny, reader, CalibrationSettings("minmax"), progress=False)
    by_method = {m: stats.ranges(m) for m in METHODS}
    assert by_method["minmax"] == compute_ranges(stats, CalibrationSettings("minmax"))
    assert stats.ranges("percentile", percentile=100.0) == by_method["minmax"]
    assert by_method["percentile"] != stats.ranges("percentile", percentile=99.0)
    assert stats.settings.method == "minmax"  # asking for another method changes nothing stored


def test_automatic_batch_size_is_used(tiny: Path) -> None:
    stats = collect_statistics(tiny, reader_for(20, batch=20), progress=False)
    assert stats.batch_size == 128  # a few KB of activations per image: the cap
    assert (
        collect_statistics(tiny, reader_for(4), CalibrationSettings(batch_size=3), progress=False).batch_size
        == 3
    )


def test_fixed_batch_models_and_mismatched_inputs(tiny: Path, tmp_path: Path) -> None:
    model = onnx.load(str(tiny))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2  # a fixed batch of 2
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))
    stats = collect_statistics(
        fixed, reader_for(12, batch=6), CalibrationSettings(batch_size=5), progress=False
    )
    assert (stats.num_images, stats.batch_size) == (12, 2)
    with pytest.raises(UsageError, match="takes batches of exactly 2 images but the reader gave 5"):
        collect_statistics(fixed, reader_for(5, batch=5), progress=False)
    big = Preprocessing(input_size=(16, 16), mean=PRE.mean, std=PRE.std)
    with pytest.raises(EdgeresError, match=r"could not run tiny\.onnx on a calibration batch") as err:
        collect_statistics(tiny, reader_for(4, pre=big), progress=False)
    assert err.value.exit_code == 1  # the model or its data failed: not a wrongly called command


def test_automatic_batch_size() -> None:
    auto = CalibrationSettings(batch_size=None)
    assert auto.resolve_batch_size(ACTIVATION_BUDGET_BYTES / 10) == 10
    assert auto.resolve_batch_size(ACTIVATION_BUDGET_BYTES * 3) == 1
    assert auto.resolve_batch_size(10) == 128
    assert CalibrationSettings(batch_size=7).resolve_batch_size(1e12) == 7


def test_usage_errors(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        collect_statistics(tmp_path / "missing.onnx", reader_for(2), progress=False)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(EdgeresError, match="cannot read") as err:
        collect_statistics(broken, reader_for(2), progress=False)
    assert err.value.exit_code == 1  # a damaged file

    class Empty:
        def get_next(self) -> None:
            return None

    with pytest.raises(UsageError, match="gave no images"):
        collect_statistics(tiny, Empty(), progress=False)

    class Wrong:
        def get_next(self) -> dict[str, np.ndarray]:
            return {"image": np.zeros((1, 3, 8, 8), np.float32)}

    with pytest.raises(UsageError, match="gave no 'input'"):
        collect_statistics(tiny, Wrong(), progress=False)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "kl"}, "unknown calibration method 'kl'"),
        ({"percentile": 101.0}, "percentile must be"),
        ({"percentile": 10}, "percentile must be"),
        ({"percentile": "high"}, "percentile must be"),
        ({"num_bins": 1000}, "power of two"),
        ({"num_bins": 64}, "num_bins must be"),
        ({"num_quantized_bins": 1}, "num_quantized_bins must be"),
        ({"num_bins": 2048.0}, "whole number"),
        ({"batch_size": 0}, "at least 1"),
        ({"batch_size": True}, "at least 1"),
    ],
)
def test_bad_settings_are_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        CalibrationSettings(**changes)  # type: ignore[arg-type]


def test_settings_round_trip() -> None:
    s = CalibrationSettings("mse", percentile=99.9, num_bins=1024, num_quantized_bins=64, batch_size=8)
    assert CalibrationSettings.from_dict(s.to_dict()) == s
    with pytest.raises(UsageError, match="unknown calibration setting"):
        CalibrationSettings.from_dict({"bins": 3})


@pytest.mark.slow
def test_resnet20_end_to_end(tmp_path: Path) -> None:
    import torch

    from edgeres.export.fold import randomize_batchnorm
    from edgeres.export.onnx_export import export_onnx
    from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, ModelMeta
    from edgeres.models import get_model

    torch.manual_seed(0)
    net = get_model("resnet20", num_classes=10)
    randomize_batchnorm(net)
    pre = Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    meta = ModelMeta(arch="resnet20", num_classes=10, preprocessing=pre)
    path = export_onnx(net, meta, tmp_path / "resnet20.onnx", exporter="torchscript", verify=False).path
    stats = collect_statistics(path, reader_for(64, batch=32, pre=pre), progress=False)
    minmax = stats.ranges("minmax")
    convs = [n for n in minmax if n.endswith("Conv_output_0")]
    relus = [n for n in minmax if "Relu" in n]
    assert len(convs) == 19 and len(relus) == 19 and "input" in minmax and "logits" in minmax
    assert all(minmax[n].lo == 0.0 for n in relus)
    before_relu = [n for n in convs if stats.derived.get(n, ("",))[0] == "relu_output"]
    assert len(before_relu) == 10  # the stem's conv and each block's first: they take their ReLU's range
    assert all((minmax[n].lo, minmax[n].hi) == (0.0, minmax[stats.derived[n][1]].hi) for n in before_relu)
    for method in ("percentile", "entropy", "mse"):
        ranges = stats.ranges(method)
        ratios = [ranges[n].absmax / minmax[n].absmax for n in minmax if minmax[n].absmax > 0]
        assert max(ratios) <= 1.0 and min(ratios) < 0.95, method


def test_non_finite_activations_stop_calibration(tmp_path: Path) -> None:
    import torch

    graph = helper.make_graph(
        [helper.make_node("Log", ["input"], ["log"]), helper.make_node("Relu", ["log"], ["out"])],
        "nan",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 8, 8])],
    )
    path = tmp_path / "nan.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    threads = torch.get_num_threads()
    with pytest.raises(EdgeresError, match="out holds NaN or infinite values"):  # log takes out's histogram
        collect_statistics(path, reader_for(8, batch=4), progress=False)  # normalized pixels < 0: NaN
    assert torch.get_num_threads() == threads  # restored after the failure too


def test_an_empty_tensor_list_is_refused(tiny: Path) -> None:
    with pytest.raises(UsageError, match="no tensors to calibrate"):
        collect_statistics(tiny, reader_for(2), tensors=[], progress=False)


def test_a_damaged_model_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf of a model")
    with pytest.raises(
        EdgeresError, match=r"cannot read '.*bad\.onnx' as an ONNX model .*re-export it"
    ) as err:
        collect_statistics(bad, reader_for(2), progress=False)
    assert err.value.exit_code == 1 and not isinstance(err.value, UsageError)
