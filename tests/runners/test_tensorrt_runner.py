"""TensorRTRunner: clear errors without TensorRT or a GPU, and (with TensorRT and a CUDA GPU) real
inference against ONNX Runtime, CUDA graphs, and the sidecar checked against this TensorRT."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeres.engine.build import NOT_INSTALLED
from edgeres.engine.sidecar import read_sidecar, sidecar_path, write_sidecar
from edgeres.errors import EdgeresError, MissingDependencyError, UsageError
from edgeres.runners.tensorrt_runner import TensorRTRunner
from tests.engine import export_resnet20, random_images, run_onnxruntime


@pytest.fixture
def engine_file(tmp_path: Path) -> Path:
    path = tmp_path / "r20.engine"
    path.write_bytes(b"not really an engine")
    return path


def test_without_tensorrt_activation_says_how_to_install(engine_file: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    runner = TensorRTRunner(engine_file)
    with pytest.raises(MissingDependencyError) as info:
        runner.activate()
    assert str(info.value) == NOT_INSTALLED and not runner.is_active
    with pytest.raises(EdgeresError, match="not active"):
        runner.infer(random_images(1))


@pytest.mark.parametrize("device", ["cpu", "cuda:x", "dla:0", "gpu"])
def test_device_must_be_cuda(engine_file: Path, device: str) -> None:
    with pytest.raises(UsageError, match="CUDA device"):
        TensorRTRunner(engine_file, device=device)
    assert TensorRTRunner(engine_file, device="cuda:1").device == "cuda:1"


def test_missing_engine_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        TensorRTRunner(tmp_path / "none.engine").activate()


# -- real TensorRT on a CUDA GPU ------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from edgeres.engine.build import build_engine
    from edgeres.engine.options import BatchProfile, EngineOptions

    onnx_path = export_resnet20(tmp_path_factory.mktemp("trt") / "r20.onnx")
    result = build_engine(onnx_path, EngineOptions(batch=BatchProfile(1, 4, 8)), progress=False)
    return onnx_path, result.engine_path


@pytest.mark.tensorrt
def test_real_engine_matches_onnxruntime(built: tuple[Path, Path]) -> None:
    onnx_path, engine = built
    with TensorRTRunner(engine) as runner:
        assert runner.input_name == "input" and runner.input_shape == (None, 3, 32, 32)
        assert runner.batch_range == (1, 8) and runner.precision == "fp32"
        assert runner.sidecar is not None and runner.sidecar.meta is not None
        for n in (1, 5, 8, 3):
            x = random_images(n, seed=n)
            ref, got = run_onnxruntime(onnx_path, x), runner.infer(x)
            assert got.shape == (n, 10) and got.dtype == np.float32
            np.testing.assert_allclose(got, ref, atol=1e-2 * max(1.0, float(np.abs(ref).max())))
            assert runner.compute_ms is not None and runner.compute_ms > 0
        with pytest.raises(UsageError, match="takes batches of 1 to 8"):
            runner.infer(random_images(9))


@pytest.mark.tensorrt
def test_real_cuda_graph_gives_the_same_logits(built: tuple[Path, Path]) -> None:
    _, engine = built
    x = random_images(4, seed=7)
    with TensorRTRunner(engine) as plain, TensorRTRunner(engine, cuda_graph=True) as graphed:
        expected = plain.infer(x)
        for _ in range(3):  # capture, then replays
            np.testing.assert_allclose(graphed.infer(x), expected, atol=1e-3)
        np.testing.assert_allclose(graphed.infer(x[:2]), plain.infer(x[:2]), atol=1e-3)
        assert graphed.compute_ms is not None


@pytest.mark.tensorrt
def test_real_sidecar_checks(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, engine = built
    sidecar = read_sidecar(engine)
    assert sidecar is not None
    copy = tmp_path / "copy.engine"
    shutil.copy(engine, copy)
    write_sidecar(copy, dataclasses.replace(sidecar, tensorrt_version="9.0.0"))
    with pytest.raises(EdgeresError, match=r"was built for TensorRT 9\.0"):
        TensorRTRunner(copy).activate()
    sidecar_path(copy).unlink()  # no sidecar: TensorRT itself decides, and this engine is fine
    with TensorRTRunner(copy) as runner:
        assert runner.precision == "unknown" and runner.infer(random_images(2)).shape == (2, 10)
    garbage = tmp_path / "garbage.engine"
    garbage.write_bytes(b"\0" * 1024)
    with pytest.raises(EdgeresError, match=r"has no sidecar garbage\.engine\.json") as info:
        TensorRTRunner(garbage).activate()
    assert "\n" not in str(info.value)
