"""`edgeres.bench.benchmark` on a real resnet20, with ONNX Runtime and PyTorch (small runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeres.bench import BenchResult, BenchSettings, benchmark
from edgeres.errors import UsageError


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A resnet20 checkpoint, its ONNX with a dynamic batch and one fixed at batch 1."""
    from edgeres import load_model
    from edgeres.checkpoint import create_checkpoint
    from edgeres.export import export_onnx

    root = tmp_path_factory.mktemp("bench")
    ckpt = create_checkpoint("resnet20", root / "resnet20.pt")
    loaded = load_model(ckpt)
    dynamic = export_onnx(
        loaded.require_module(), loaded.meta, root / "resnet20.onnx", exporter="torchscript"
    )
    fixed = export_onnx(
        loaded.require_module(), loaded.meta, root / "r20-b1.onnx", exporter="torchscript",
        dynamic_batch=False, verify=False,
    )  # fmt: skip
    return {"pt": ckpt, "onnx": dynamic.path, "fixed": fixed.path}


def _check_stats(r: BenchResult, batch: int, iters: int) -> None:
    assert r.ok, r.error
    assert r.batch == batch and r.iterations == iters
    assert r.min_ms is not None and r.median_ms is not None and r.p90_ms is not None
    assert r.p95_ms is not None and r.p99_ms is not None and r.max_ms is not None and r.mean_ms is not None
    assert 0 < r.min_ms <= r.median_ms <= r.p90_ms <= r.p95_ms <= r.p99_ms <= r.max_ms
    assert r.min_ms <= r.mean_ms <= r.max_ms
    assert r.throughput == pytest.approx(batch / (r.mean_ms / 1000))
    assert r.cv is not None and r.cv >= 0 and r.noisy == (r.cv > 0.10)
    assert r.compute_mean_ms is None  # only TensorRT measures GPU compute time


def test_onnxruntime_two_batches(models: dict[str, Path]) -> None:
    settings = BenchSettings(batches=(1, 2), warmup=1, iters=3, threads=1)
    results = benchmark(models["onnx"], settings)
    assert [r.batch for r in results] == [1, 2]
    for r in results:
        _check_stats(r, r.batch, 3)
        assert (r.model, r.backend, r.device, r.precision, r.threads) == (
            "resnet20.onnx", "onnxruntime", "cpu", "fp32", 1,
        )  # fmt: skip


def test_torch_backend_on_a_checkpoint(models: dict[str, Path]) -> None:
    (r,) = benchmark(models["pt"], BenchSettings(batches=(2,), warmup=1, iters=3, threads=1, backend="torch"))
    _check_stats(r, 2, 3)
    assert (r.backend, r.device, r.precision) == ("torch", "cpu", "fp32")


def test_duration_runs_at_least_once(models: dict[str, Path]) -> None:
    (r,) = benchmark(models["onnx"], BenchSettings(warmup=0, iters=None, duration=0.05, threads=1))
    assert r.ok and r.iterations >= 1


def test_iters_and_duration_are_both_floors(models: dict[str, Path]) -> None:
    settings = BenchSettings(warmup=0, iters=4, duration=0.001, threads=1)
    assert (settings.iters, settings.duration) == (4, 0.001)  # together, not one or the other
    (r,) = benchmark(models["onnx"], settings)
    assert r.ok and r.iterations == 4


def test_throughput_mode_on_onnxruntime(models: dict[str, Path]) -> None:
    (r,) = benchmark(models["onnx"], BenchSettings(batches=(2,), warmup=1, iters=4, streams=2, threads=2))
    assert r.ok and r.streams == 2 and r.iterations >= 4 and r.threads == 2
    assert r.images_per_s == r.throughput and r.throughput is not None and r.throughput > 0


def test_fixed_batch_model_gives_an_error_row(models: dict[str, Path]) -> None:
    ok, bad = benchmark(models["fixed"], BenchSettings(batches=(1, 4), warmup=1, iters=3, threads=1))
    _check_stats(ok, 1, 3)
    assert not bad.ok and bad.batch == 4 and bad.mean_ms is None and bad.iterations == 0
    assert bad.error is not None and "batches of 1 only, not 4" in bad.error and "\n" not in bad.error


def test_missing_model_and_wrong_backend_give_error_rows(tmp_path: Path, models: dict[str, Path]) -> None:
    rows = benchmark(tmp_path / "nope.onnx", BenchSettings(batches=(1, 8), iters=3))
    assert [r.batch for r in rows] == [1, 8]
    assert all(r.error == f"model file '{tmp_path / 'nope.onnx'}' does not exist" for r in rows)
    assert rows[0].backend == "onnxruntime"
    (row,) = benchmark(models["onnx"], BenchSettings(iters=3, backend="torch"))
    assert row.error is not None and "torch backend runs PyTorch models" in row.error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iters": 0}, "--iters must be at least 1, got 0"),
        ({"warmup": -1}, "--warmup must be 0 or more, got -1"),
        ({"batches": (1, 0)}, "batch sizes must be positive integers, got 0"),
        ({"batches": ()}, "give at least one batch size"),
        ({"iters": None}, "give --iters N or --duration SECONDS"),
        ({"iters": None, "duration": 0.0}, "--duration must be a positive number"),
        ({"threads": 0}, "--threads must be at least 1"),
        ({"warmup_ms": -1.0}, "--warmup-ms must be 0 or more, got -1.0"),
        ({"streams": 0}, "--streams must be at least 1, got 0"),
        ({"backend": "tvm"}, "unknown backend 'tvm'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"precision": "int8"}, "unknown precision 'int8'"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        BenchSettings(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value) and "\n" not in str(info.value)


def test_engine_without_tensorrt_gives_an_error_row(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    engine = tmp_path / "r20.engine"
    engine.write_bytes(b"not an engine")
    (row,) = benchmark(engine, BenchSettings(iters=3))
    assert (row.backend, row.device) == ("tensorrt", "cuda")
    assert row.error is not None and "needs TensorRT, which is not installed" in row.error
