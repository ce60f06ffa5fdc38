"""What the output folder holds: result files that name models relative to it, and no stale files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from edgeres.pipeline import PipelineConfig, PipelineResult, Status, format_summary, run_pipeline
from edgeres.pipeline.state import STATE_FILE


def _models_named(out: Path) -> set[str]:
    names = set()
    for path in out.glob("eval_*.json"):
        data = json.loads(path.read_text())
        names |= {data["model"], *([data["reference"]["model"]] if "reference" in data else [])}
    quant = json.loads((out / "quantize.json").read_text())
    names |= {quant["fp32_onnx"], quant["cache"], *(t["path"] for t in quant["targets"])}
    names |= {r["model"] for r in json.loads((out / "bench.json").read_text())["results"]}
    return names


def test_result_files_name_models_relative_to_the_folder(first_run: tuple[Path, PipelineResult]) -> None:
    out, _ = first_run
    names = _models_named(out)
    assert names and all(not Path(n).is_absolute() and (out / n).is_file() for n in names), names


def test_the_report_of_a_copied_folder_does_not_split_variants(
    first_run: tuple[Path, PipelineResult], tmp_path: Path, monkeypatch
) -> None:
    from edgeres.report import load_results

    copy = tmp_path / "out3"
    shutil.copytree(first_run[0], copy)  # the original stays, as after `cp -rp out out3`
    monkeypatch.chdir(first_run[0].parent)  # where `out/model.fp32.onnx` exists too
    data = load_results([copy])
    fp32 = [v for v in data.variants if v.precision == "fp32"]
    assert len(fp32) == 1 and fp32[0].label == "FP32", [v.label for v in data.variants]
    assert fp32[0].top1 is not None and any(r.ok for r in fp32[0].latency)
    assert all(Path(v.model).parent == Path(".") for v in data.variants)
    assert not [n for n in data.notes if n.startswith("FP32") and ("no accuracy" in n or "no latency" in n)]


def test_a_stage_skipped_on_request_removes_what_it_made(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig
) -> None:
    config = replace(fast_config, skip=("eval", "bench", "report"))
    result = run_pipeline(digits_checkpoint, copied_run, config, calib="digits", progress=False)
    assert result.ok, format_summary(result)
    assert not list(copied_run.glob("eval_*.json")) and not (copied_run / "bench.json").exists()
    assert not (copied_run / "report").exists()
    assert "removed its earlier outputs (bench.json)" in result["bench"].reason
    assert {p.name for p in copied_run.glob("*.json")} == {
        "quantize.json", "model.int8.calib.json", "train_split.json", STATE_FILE
    }  # fmt: skip


def test_outputs_of_a_failed_run_are_cleaned_when_a_run_finishes(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig, tmp_path: Path
) -> None:
    quick = replace(fast_config, skip=("fp16", "eval", "bench", "report"))
    every_target = quick.override("quantize", target="all")
    result = run_pipeline(digits_checkpoint, copied_run, every_target, calib="digits", progress=False)
    assert result["quantize"].status is Status.RAN and (copied_run / "model.int8.tensorrt.onnx").exists()
    empty = tmp_path / "no-images"
    empty.mkdir()
    cpu = quick.override("quantize", target="cpu")
    result = run_pipeline(digits_checkpoint, copied_run, cpu, calib=str(empty), progress=False)
    assert result["quantize"].status is Status.FAILED
    assert json.loads((copied_run / STATE_FILE).read_text())["leftovers"]["quantize"]
    result = run_pipeline(digits_checkpoint, copied_run, cpu, calib="digits", progress=False)
    assert result["quantize"].status is Status.RAN
    assert not (copied_run / "model.int8.tensorrt.onnx").exists()
    assert (copied_run / "model.int8.cpu.onnx").exists()
    assert "leftovers" not in json.loads((copied_run / STATE_FILE).read_text())


def test_a_bench_with_failed_rows_is_not_recorded_and_runs_again(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig
) -> None:
    (copied_run / "model.int8.cpu.onnx").write_bytes(b"damaged")  # newer: quantize stays up to date
    config = replace(fast_config, skip=("eval",))
    result = run_pipeline(digits_checkpoint, copied_run, config, calib="digits", progress=False)
    bench = result["bench"]
    assert result["quantize"].status is Status.UP_TO_DATE and bench.status is Status.RAN
    assert "model.int8.cpu.onnx at batch 1 failed" in bench.reason
    assert "1 of 2 rows failed: not recorded, the next run times again" in bench.reason
    assert "bench" not in json.loads((copied_run / STATE_FILE).read_text())["stages"]
    again = run_pipeline(digits_checkpoint, copied_run, config, calib="digits", progress=False)
    assert again["bench"].status is Status.RAN and (copied_run / "bench.json").exists()
