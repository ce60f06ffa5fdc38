"""The TensorRT runner's plain-data decisions: input geometry from the engine's shapes and profile,
I/O types, and when to set a shape, run uncaptured, capture or replay a CUDA graph."""

from __future__ import annotations

import numpy as np
import pytest

from edgeres.errors import EdgeresError, UsageError
from edgeres.runners.tensorrt_io import GraphPlan, input_geometry, numpy_dtype


@pytest.mark.parametrize(
    ("tensor_shape", "profile", "expected"),
    [
        ((4, 3, 32, 32), None, (3, 32, 32, (4, 4))),
        ((-1, 3, 32, 32), ((1, 3, 32, 32), (8, 3, 32, 32), (32, 3, 32, 32)), (3, 32, 32, (1, 32))),
        # a dynamic H/W that the profile pins: get_tensor_shape still says -1
        ((-1, 3, -1, -1), ((1, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224)), (3, 224, 224, (1, 8))),
        ((-1, -1, -1, -1), ((2, 1, 28, 28), (2, 1, 28, 28), (2, 1, 28, 28)), (1, 28, 28, (2, 2))),
        ((1, 3, -1, 64), ((1, 3, 48, 64), (1, 3, 48, 64), (1, 3, 48, 64)), (3, 48, 64, (1, 1))),
    ],
)
def test_input_geometry(
    tensor_shape: tuple[int, ...],
    profile: tuple[tuple[int, ...], ...] | None,
    expected: tuple[int, int, int, tuple[int, int]],
) -> None:
    assert input_geometry(tensor_shape, profile) == expected


def test_height_and_width_that_vary_in_the_profile_are_refused() -> None:
    profile = ((1, 3, 224, 224), (1, 3, 320, 320), (1, 3, 448, 448))
    with pytest.raises(UsageError) as info:
        input_geometry((-1, 3, -1, -1), profile, engine="r50.engine", name="images")
    assert str(info.value) == (
        "engine r50.engine input images takes height 224 to 448; edgeres needs a fixed channels, height "
        "and width: rebuild it with one input size"
    )


@pytest.mark.parametrize(
    ("tensor_shape", "profile", "error", "match"),
    [
        ((-1, 10), None, UsageError, r"has shape \(-1, 10\); edgeres needs \(N, C, H, W\)"),
        ((3, 32, 32), None, UsageError, "needs"),
        ((-1, 3, 32, 32), None, EdgeresError, "no usable optimization profile"),
        ((-1, 3, 32, 32), ((0, 3, 32, 32), (1, 3, 32, 32), (1, 3, 32, 32)), EdgeresError, "no usable"),
        ((-1, 3, 32, 32), ((1, 3, 32), (1, 3, 32), (1, 3, 32)), EdgeresError, "no usable"),
    ],
)
def test_input_geometry_refuses(
    tensor_shape: tuple[int, ...], profile: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        input_geometry(tensor_shape, profile)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("FLOAT", np.float32), ("DataType.HALF", np.float16), ("INT8", np.int8), ("INT64", np.int64)],
)
def test_numpy_dtype(name: str, expected: type) -> None:
    assert numpy_dtype(name) == np.dtype(expected)


@pytest.mark.parametrize("name", ["BF16", "DataType.FP8", "FP4", "INT4"])
def test_types_numpy_lacks_are_one_line(name: str) -> None:
    with pytest.raises(UsageError) as info:
        numpy_dtype(name, engine="r.engine", tensor="input x")
    short = name.split(".")[-1]
    assert str(info.value) == (
        f"engine r.engine input x is {short}, which numpy has no type for; build the engine from an ONNX "
        "whose input and output are float32 or float16"
    )


def _run(plan: GraphPlan, batches: list[int]) -> list[tuple[str, ...]]:
    return [plan.plan(n) for n in batches]


def test_graphs_are_never_replayed_straight_after_a_shape_change() -> None:
    plan = GraphPlan(enabled=True)
    assert _run(plan, [4, 4]) == [("set_shape", "enqueue"), ("capture", "replay")]
    plan.captured(4, True)
    assert _run(plan, [4, 2, 2]) == [("replay",), ("set_shape", "enqueue"), ("capture", "replay")]
    plan.captured(2, True)
    # back to 4: its graph exists, but the context was last set up for 2
    assert _run(plan, [4, 4, 2, 2]) == [
        ("set_shape", "enqueue"),
        ("replay",),
        ("set_shape", "enqueue"),
        ("replay",),
    ]


def test_graphs_off_too_large_or_failed_run_plainly() -> None:
    plain = GraphPlan(enabled=False)
    assert _run(plain, [4, 4, 2]) == [("set_shape", "enqueue"), ("enqueue",), ("set_shape", "enqueue")]
    big = GraphPlan(enabled=True, max_batch=8)
    assert _run(big, [16, 16]) == [("set_shape", "enqueue"), ("enqueue",)]
    failed = GraphPlan(enabled=True)
    assert _run(failed, [4, 4]) == [("set_shape", "enqueue"), ("capture", "replay")]
    failed.captured(4, False)
    assert _run(failed, [4, 4]) == [("enqueue",), ("enqueue",)]


def test_a_refused_shape_is_set_again_next_time() -> None:
    plan = GraphPlan(enabled=True)
    assert plan.plan(4) == ("set_shape", "enqueue")
    plan.forget_shape()  # set_input_shape failed
    assert plan.plan(4) == ("set_shape", "enqueue")


def test_a_file_another_backend_claims_is_not_an_engine(tmp_path) -> None:
    """Refused before TensorRT is imported: no TensorRT needed to check it."""
    from edgeres.runners.registry import RunnerArgs
    from edgeres.runners.tensorrt_runner import TensorRTRunner, create

    for name, owner in (("r20.onnx", "onnxruntime"), ("r20.xml", "openvino")):
        with pytest.raises(UsageError, match=rf"runs TensorRT engines, not '{name}'; build one"):
            create(RunnerArgs(tmp_path / name, device="cuda", owner=owner))
    for name, owner in (("r20.engine", "tensorrt"), ("r20.bin", None)):  # a name no backend claims may be one
        assert isinstance(create(RunnerArgs(tmp_path / name, device="cuda", owner=owner)), TensorRTRunner)


# -- real TensorRT on a CUDA GPU ------------------------------------------------------------------
@pytest.fixture(scope="module")
def dynamic_hw_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    import onnx

    from edgeres.engine.build import build_engine
    from edgeres.engine.options import BatchProfile, EngineOptions
    from tests.engine import export_resnet20

    path = export_resnet20(tmp_path_factory.mktemp("hw") / "r20.onnx")
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"  # H/W dynamic; the metadata says 32x32
    onnx.save(model, str(path))
    result = build_engine(path, EngineOptions(batch=BatchProfile(1, 2, 4)), progress=False)
    return path, result.engine_path


@pytest.mark.tensorrt
def test_real_engine_with_dynamic_height_and_width_pinned_by_its_profile(
    dynamic_hw_engine: tuple[object, object],
) -> None:
    from edgeres.runners.tensorrt_runner import TensorRTRunner
    from tests.engine import random_images, run_onnxruntime

    onnx_path, engine = dynamic_hw_engine
    with TensorRTRunner(engine) as runner:  # type: ignore[arg-type]
        assert runner.input_shape == (None, 3, 32, 32) and runner.batch_range == (1, 4)
        x = random_images(3)
        np.testing.assert_allclose(runner.infer(x), run_onnxruntime(onnx_path, x), atol=1e-2)  # type: ignore[arg-type]


@pytest.mark.tensorrt
def test_real_cuda_graphs_across_shape_changes(dynamic_hw_engine: tuple[object, object]) -> None:
    from edgeres.runners.tensorrt_runner import TensorRTRunner
    from tests.engine import random_images

    _, engine = dynamic_hw_engine
    with TensorRTRunner(engine) as plain, TensorRTRunner(engine, cuda_graph=True) as graphed:  # type: ignore[arg-type]
        for i, n in enumerate([4, 4, 4, 2, 2, 2, 4, 4, 2, 1, 4]):
            x = random_images(n, seed=i)  # new data each time: a stale replay cannot pass
            np.testing.assert_allclose(graphed.infer(x), plain.infer(x), atol=1e-3)
