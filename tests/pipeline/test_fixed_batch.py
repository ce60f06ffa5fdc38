"""A model whose batch is fixed: every stage runs at that batch, and bench times only it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from edgeres.pipeline import PipelineConfig, PipelineResult, Status, format_summary, run_pipeline
from edgeres.pipeline.context import onnx_fixed_batch
from edgeres.pipeline.settings import BenchSettings, ExportSettings


def _bench_batches(out: Path) -> set[int]:
    return {r["batch"] for r in json.loads((out / "bench.json").read_text())["results"]}


@pytest.fixture(scope="module")
def fixed_run(
    digits_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, PipelineResult]:
    """`[export] dynamic_batch = false`, bench asked for batches 1 and 4."""
    from tests.pipeline.conftest import _fast_config

    config = _fast_config()
    config = replace(
        config,
        export=ExportSettings(exporter="torchscript", dynamic_batch=False),
        bench=BenchSettings(batches=(1, 4), warmup=1, iters=3),
    )
    out = tmp_path_factory.mktemp("fixed") / "out"
    return out, run_pipeline(digits_checkpoint, out, config, calib="digits", progress=False)


def test_an_exported_fixed_batch_runs_every_stage_at_that_batch(
    fixed_run: tuple[Path, PipelineResult],
) -> None:
    out, result = fixed_run
    assert result.ok, format_summary(result)
    assert onnx_fixed_batch(out / "model.fp32.onnx") == 1
    assert "batch fixed at 1" in result["export"].reason
    assert result["quantize"].status is Status.RAN and "batch fixed at 1" in result["quantize"].reason
    quant = json.loads((out / "quantize.json").read_text())
    assert quant["fp32_top1"] is None and quant["targets"][0]["top1"] is None  # its one-batch check dropped
    assert json.loads((out / "eval_int8-cpu.json").read_text())["result"]["num_images"] == 64
    assert _bench_batches(out) == {1}
    assert "batch 4 not timed: the model takes batches of exactly 1" in result["bench"].reason
    assert result.report is not None
    int8 = next(v for v in result.report.data.variants if v.precision == "int8")
    assert int8.accuracy is not None and int8.accuracy.images == 64  # from eval, not quantize


def test_an_onnx_model_with_a_fixed_batch(
    fixed_run: tuple[Path, PipelineResult], fast_config: PipelineConfig, tmp_path: Path
) -> None:
    model = tmp_path / "fixed.onnx"
    shutil.copy(fixed_run[0] / "model.fp32.onnx", model)
    config = fast_config.override("bench", batches=(1, 8))
    out = tmp_path / "out"
    result = run_pipeline(model, out, config, calib="digits", eval_data="digits", progress=False)
    assert result.ok, format_summary(result)
    assert "held out from calibration" in result["eval"].reason
    assert json.loads((out / "eval_fp32.json").read_text())["result"]["num_images"] == 64
    assert _bench_batches(out) == {1} and "batch 8 not timed" in result["bench"].reason


def test_max_drop_needs_a_dynamic_batch(fixed_run: tuple[Path, PipelineResult], tmp_path: Path) -> None:
    model = tmp_path / "fixed.onnx"
    shutil.copy(fixed_run[0] / "model.fp32.onnx", model)
    config = replace(PipelineConfig().override("quantize", max_drop=1.0), skip=("fp16", "bench", "report"))
    result = run_pipeline(model, tmp_path / "out", config, calib="digits", eval_data="digits", progress=False)
    failed = result.failed
    assert failed is not None and failed.name == "quantize"
    assert "dynamic batch" in failed.reason and "takes batches of exactly 1" in failed.reason
