"""build_engine: its error paths without TensorRT, and (with TensorRT and a CUDA GPU) real
FP32/FP16/INT8 engines compared with ONNX Runtime, the timing cache, the workspace, optimization
level and progress options, and a DLA request on a GPU without DLA.

Without TensorRT nothing here reaches TensorRT's API; that the names build_engine calls exist in
TensorRT 10.3 and 11.4 is checked by tests/engine/test_api_surface.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeres.engine.build import NOT_INSTALLED, build_engine
from edgeres.engine.options import BatchProfile, EngineOptions
from edgeres.errors import EdgeresError, MissingDependencyError, UsageError
from tests.engine import export_resnet20, quantize_qdq, random_images, run_onnxruntime, top1_agreement

HAVE_CONVERTER = importlib.util.find_spec("onnxconverter_common") is not None


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_resnet20(tmp_path_factory.mktemp("build") / "r20.onnx")


# -- without TensorRT -----------------------------------------------------------------------------
def test_no_tensorrt_says_how_to_install(fp32: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` now fails, installed or not
    with pytest.raises(MissingDependencyError) as info:
        build_engine(fp32, EngineOptions(output=fp32.with_name("x.engine")))
    assert str(info.value) == NOT_INSTALLED
    assert NOT_INSTALLED == (
        'TensorRT is not installed: pip install "edgeres[tensorrt]" (on a Jetson, use JetPack\'s TensorRT)'
    )
    assert info.value.exit_code == 1 and not fp32.with_name("x.engine").exists()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (EngineOptions(output=Path("r20.onnx.bin")), UsageError, r"must end in \.engine"),
        (EngineOptions(output=Path("/no/such/folder/r20.engine")), EdgeresError, "does not exist"),
        (EngineOptions(dla_core=0, batch=BatchProfile(1, 2, 4)), UsageError, "DLA needs a fixed batch"),
    ],
)
def test_options_are_checked_before_tensorrt(
    fp32: Path, options: EngineOptions, error: type[Exception], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(error, match=match):
        build_engine(fp32, options)


# -- real TensorRT on a CUDA GPU ------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_trt() -> Any:
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return trt


def _run_engine(engine: Path, x: np.ndarray) -> np.ndarray:
    from edgeres.runners.tensorrt_runner import TensorRTRunner

    with TensorRTRunner(engine) as runner:
        return np.concatenate([runner.infer(x[i : i + 8]) for i in range(0, len(x), 8)])


@pytest.mark.tensorrt
@pytest.mark.parametrize("kind", ["fp32", "fp16", "int8", "int8+fp16"])
def test_real_engines_agree_with_onnxruntime(real_trt: Any, fp32: Path, tmp_path: Path, kind: str) -> None:
    if "fp16" in kind and not HAVE_CONVERTER:
        pytest.skip("onnxconverter-common is not installed")
    source = quantize_qdq(fp32, tmp_path / "r20.int8.onnx") if kind.startswith("int8") else fp32
    options = EngineOptions(fp16="fp16" in kind, batch=BatchProfile(1, 8, 8), output=tmp_path / "r.engine")
    result = build_engine(source, options, progress=False)
    assert result.sidecar.precision == kind
    x = random_images(64, seed=1)
    ref, got = run_onnxruntime(source, x), _run_engine(result.engine_path, x)
    assert top1_agreement(ref, got) >= (0.99 if kind == "fp32" else 0.9)
    tolerance = {"fp32": 1e-2, "fp16": 5e-2}.get(kind, 0.25)
    assert np.abs(got - ref).max() <= tolerance * max(1.0, float(np.abs(ref).max()))


@pytest.mark.tensorrt
def test_real_timing_cache_is_reused(real_trt: Any, fp32: Path, tmp_path: Path) -> None:
    cache = tmp_path / "trt.cache"
    options = EngineOptions(timing_cache=cache, output=tmp_path / "r.engine")
    first = build_engine(fp32, options, progress=False)
    size = cache.stat().st_size
    assert size > 0
    second = build_engine(fp32, options, progress=False)
    assert cache.stat().st_size >= size
    assert second.seconds <= first.seconds * 1.5 + 1.0


@pytest.mark.tensorrt
def test_real_workspace_level_and_progress_reach_tensorrt(
    real_trt: Any, fp32: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = EngineOptions(
        workspace=64 << 20,
        builder_optimization_level=0,
        batch=BatchProfile(1, 4, 8),
        output=tmp_path / "r.engine",
    )
    result = build_engine(fp32, options, progress=True)
    assert result.sidecar.options["workspace_bytes"] == 64 << 20
    assert result.sidecar.options["builder_optimization_level"] == 0
    if hasattr(real_trt, "IProgressMonitor"):  # TensorRT called edgeres's progress bars
        assert capsys.readouterr().err.strip()
    x = random_images(16, seed=2)
    assert top1_agreement(run_onnxruntime(fp32, x), _run_engine(result.engine_path, x)) >= 0.99


@pytest.mark.tensorrt
def test_real_dla_request_on_a_gpu_without_dla(real_trt: Any, fp32: Path, tmp_path: Path) -> None:
    logger = real_trt.Logger(real_trt.Logger.ERROR)
    if int(getattr(real_trt.Builder(logger), "num_DLA_cores", 0) or 0) > 0:
        pytest.skip("this device has a DLA")
    with pytest.raises(EdgeresError, match="sees no DLA here"):
        build_engine(fp32, EngineOptions(dla_core=0, output=tmp_path / "r.engine"), progress=False)
