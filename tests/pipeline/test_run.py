"""run_pipeline on a tiny real model: every stage, then what a second run skips and reruns."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgeres.pipeline import (
    PipelineConfig,
    PipelineResult,
    Status,
    format_summary,
    load_config,
    run_pipeline,
)
from edgeres.pipeline.context import has_module
from edgeres.pipeline.lock import LOCK_NAME
from edgeres.pipeline.state import STATE_FILE

NO_TENSORRT = not has_module("tensorrt")
OPENVINO = has_module("openvino")
FP16 = has_module("onnxconverter_common")
FP16_AGAIN = "up to date" if FP16 else "skipped"  # fp16 in a second run


def statuses(result: PipelineResult) -> dict[str, str]:
    return {s.name: s.status.value for s in result.stages}


def _predictions(model: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 of each evaluated image, its label): 64 of train's held-out images, stratified, seed 0."""
    from edgeres.data import open_source, stratified_sample
    from edgeres.data.preprocess import preprocess
    from edgeres.export.onnx_meta import read_onnx_meta
    from edgeres.runners import OnnxRuntimeRunner

    split = json.loads((out / "train_split.json").read_text())
    source = open_source(split["data"])
    held = np.asarray(split["val_indices"], dtype=np.int64)
    chosen = held[stratified_sample(source.labels[held], 64, seed=0)]
    meta = read_onnx_meta(model)
    batch = np.stack([preprocess(source.load(int(i)), meta.preprocessing) for i in chosen])
    with OnnxRuntimeRunner(model) as runner:
        return np.argmax(runner.infer(batch), axis=1), source.labels[chosen]


def test_first_run_makes_every_artifact(first_run: tuple[Path, PipelineResult]) -> None:
    out, result = first_run
    assert result.ok and result.failed is None, format_summary(result)
    ran = statuses(result)
    assert [s.name for s in result] == ["export", "fp16", "quantize", "engines", "eval", "bench", "report"]
    expected = dict.fromkeys(["export", "fp16", "quantize", "eval", "bench", "report"], "ran")
    if not FP16:
        expected["fp16"] = "skipped"
    assert {k: v for k, v in ran.items() if k != "engines"} == expected
    names = {p.name for p in out.iterdir()}
    assert names >= {
        "model.fp32.onnx", "model.int8.cpu.onnx", "model.int8.calib.json", "quantize.json",
        "eval_fp32.json", "eval_int8-cpu.json", "bench.json", "train_split.json", STATE_FILE, "report",
    }  # fmt: skip
    assert LOCK_NAME in names  # kept: removing a lock file while others may open it races
    assert not [n for n in names if n.startswith(".") and n != LOCK_NAME]  # no temporary files left behind
    for stage in result.stages:
        assert all(p.exists() for p in stage.outputs), stage
    assert result.report is not None and result.report.html.exists()
    assert "validation images edgeres train held out" in result["eval"].reason
    if FP16:
        assert {"model.fp16.onnx", "eval_fp16.json"} <= names
        assert result["bench"].reason.startswith("fp16 not timed: no GPU: FP16 runs only emulated on CPU")
    else:
        assert result["fp16"].reason.startswith("onnxconverter-common not installed")
    assert "openvino" not in result["eval"].reason + result["bench"].reason  # off in the fast config


@pytest.mark.skipif(not NO_TENSORRT, reason="TensorRT is installed here")
def test_engines_are_skipped_with_the_reason(first_run: tuple[Path, PipelineResult]) -> None:
    out, result = first_run
    engines = result["engines"]
    assert engines.status is Status.SKIPPED and engines.reason == "TensorRT not installed"
    summary = format_summary(result)
    assert "engines   skipped" in summary and "TensorRT not installed" in summary
    assert not list(out.glob("*.engine")) and not (out / "model.int8.tensorrt.onnx").exists()


def test_eval_files_have_the_shape_of_eval_compare(first_run: tuple[Path, PipelineResult]) -> None:
    out, _ = first_run
    fp32 = json.loads((out / "eval_fp32.json").read_text())
    assert list(fp32) == [
        "kind", "schema", "model", "precision", "backend", "device", "size_bytes", "result", "caveat",
    ]  # fmt: skip
    assert (fp32["kind"], fp32["schema"]) == ("edgeres.eval", 1)
    assert fp32["precision"] == "fp32" and fp32["size_bytes"] == (out / "model.fp32.onnx").stat().st_size
    int8 = json.loads((out / "eval_int8-cpu.json").read_text())
    assert list(int8) == [
        "kind",
        "schema",
        "model",
        "precision",
        "backend",
        "device",
        "size_bytes",
        "result",
        "caveat",
        "reference",
    ]
    assert list(int8["reference"]) == [
        "model",
        "precision",
        "backend",
        "device",
        "size_bytes",
        "result",
        "caveat",
        "agreement",
        "flips",
    ]
    assert int8["precision"] == "int8" and Path(int8["model"]).name == "model.int8.cpu.onnx"
    assert (int8["backend"], int8["device"]) == (int8["reference"]["backend"], int8["reference"]["device"])
    assert (fp32["backend"], fp32["device"]) == ("onnxruntime", "cpu")
    assert int8["result"]["num_images"] == 64
    assert int8["reference"]["result"] == fp32["result"]
    # The figures recomputed here: the 64-image sample of train's held-out images, each model run with ORT.
    fp32_pred, labels = _predictions(out / "model.fp32.onnx", out)
    int8_pred, _ = _predictions(out / "model.int8.cpu.onnx", out)
    assert len(set(fp32_pred.tolist())) > 1  # a model that answers one class proves nothing
    assert int8["reference"]["agreement"] == pytest.approx(float(np.mean(int8_pred == fp32_pred)), abs=1e-12)
    flipped = int8_pred != fp32_pred
    changed = collections.Counter(zip(fp32_pred[flipped].tolist(), int8_pred[flipped].tolist(), strict=True))
    counts = [f["count"] for f in int8["reference"]["flips"]]
    assert sum(counts) == int(flipped.sum()) and counts == sorted(changed.values(), reverse=True)
    assert fp32["result"]["top1"] == pytest.approx(float(np.mean(fp32_pred == labels)), abs=1e-12)
    assert int8["result"]["top1"] == pytest.approx(float(np.mean(int8_pred == labels)), abs=1e-12)
    if FP16:
        assert json.loads((out / "eval_fp16.json").read_text())["precision"] == "fp16"


def _openvino_rows(out: Path) -> list[dict]:
    return [r for r in json.loads((out / "bench.json").read_text())["results"] if r["backend"] == "openvino"]


def test_openvino_runs_fp32_and_the_cpu_int8_compared_within_openvino(
    openvino_run: tuple[Path, PipelineResult],
) -> None:
    out, result = openvino_run
    if not OPENVINO:
        assert result["eval"].reason.endswith("; no OpenVINO rows: openvino not installed")
        assert result["bench"].reason.endswith("no OpenVINO rows: openvino not installed")
        assert not list(out.glob("eval_*openvino*"))
        return
    from edgeres.report import summary_table

    ov_fp32 = json.loads((out / "eval_fp32-openvino.json").read_text())
    ov_int8 = json.loads((out / "eval_int8-cpu-openvino.json").read_text())
    assert (ov_fp32["backend"], ov_fp32["device"], ov_fp32["precision"]) == ("openvino", "cpu", "fp32")
    assert (ov_int8["backend"], ov_int8["model"], ov_int8["precision"]) == (
        "openvino",
        "model.int8.cpu.onnx",
        "int8",
    )
    assert "reference" not in ov_fp32
    ref = ov_int8["reference"]
    assert (ref["model"], ref["backend"]) == ("model.fp32.onnx", "openvino")  # the FP32 of its runtime
    assert ref["result"] == ov_fp32["result"] and ov_int8["result"]["num_images"] == 64
    assert "int8-cpu-openvino " in result["eval"].reason  # its top-1 in the stage line
    # FP32 is FP32 on OpenVINO (f32 hint): it predicts what ONNX Runtime's FP32 does
    assert ov_fp32["result"]["top1"] == json.loads((out / "eval_fp32.json").read_text())["result"]["top1"]
    rows = {r["model"]: r for r in _openvino_rows(out)}
    assert rows.keys() == {"model.fp32.onnx", "model.int8.cpu.onnx"} and not any(
        r["error"] for r in rows.values()
    )
    assert result.report is not None
    variants = {v.model: v for v in result.report.data.variants}
    fp32, int8 = variants["model.fp32.onnx"], variants["model.int8.cpu.onnx"]

    def on(v, where: str):
        return next(r for r in v.latency if r.where == where)

    ov, ov_base = on(int8, "openvino/cpu"), on(fp32, "openvino/cpu")
    assert ov.ratio == pytest.approx(ov.headline_ms / ov_base.headline_ms)  # OpenVINO's FP32, not ORT's
    assert ov_base.ratio == pytest.approx(1)
    ort, ort_fp32 = on(int8, "onnxruntime/cpu"), on(fp32, "onnxruntime/cpu")
    assert ort.ratio == pytest.approx(ort.headline_ms / ort_fp32.headline_ms)
    table = summary_table(result.report.data).splitlines()
    line = next(x for x in table if x.startswith(int8.label + " "))
    shown = [x for x in table if "openvino/cpu" in x]
    assert len(shown) == 2 and any(f"({ov.ratio:.2f}x)" in x and x.startswith(int8.label) for x in shown)
    assert "onnxruntime/cpu" in line  # ONNX Runtime's row first, then OpenVINO's
    # each row shows the accuracy measured there: top-1, change and agreement against that runtime's FP32
    ov_row = next(x for x in shown if x.startswith(int8.label + " ")).split()
    ort_row = line.split()
    drop = 100 * (ov_fp32["result"]["top1"] - ov_int8["result"]["top1"])
    cells = [
        f"{100 * ov_int8['result']['top1']:.2f}%",
        f"{-drop + 0.0:+.2f}",
        f"{100 * ref['agreement']:.2f}%",
    ]
    assert ov_row[3:6] == cells, (ov_row, cells)
    ort_int8 = json.loads((out / "eval_int8-cpu.json").read_text())
    assert ort_row[3] == f"{100 * ort_int8['result']['top1']:.2f}%"
    # edgeres report on the folder (eval_int8-cpu-openvino.json sorts first): ORT's is still the headline
    from edgeres.report import load_results

    assert ort_int8["result"]["top1"] != ov_int8["result"]["top1"]  # else this proves nothing
    again = {v.model: v for v in load_results([out]).variants}["model.int8.cpu.onnx"]
    assert again.top1 == ort_int8["result"]["top1"] and [p.where for p in again.accuracy_on] == [
        "openvino/cpu"
    ]
    assert sum("| openvino/cpu |" in x for x in result.report.markdown.read_text().splitlines()) == 2


def test_the_openvino_layout_is_evaluated_on_both_runtimes_and_timed_on_openvino(
    digits_checkpoint: Path, fast_config, tmp_path: Path
) -> None:
    pytest.importorskip("openvino", reason="OpenVINO is not installed")
    from edgeres.pipeline import run_pipeline

    config = fast_config.override("quantize", target="openvino").override("openvino", enabled=True)
    out = tmp_path / "out"
    result = run_pipeline(digits_checkpoint, out, config, calib="digits", progress=False)
    on_ort = json.loads((out / "eval_int8-openvino.json").read_text())
    on_ov = json.loads((out / "eval_int8-openvino-openvino.json").read_text())
    assert (on_ort["backend"], on_ov["backend"]) == ("onnxruntime", "openvino")
    assert on_ort["model"] == on_ov["model"] == "model.int8.openvino.onnx"
    assert on_ov["reference"]["backend"] == "openvino"  # against OpenVINO's FP32
    timed = {(r["model"], r["backend"]) for r in json.loads((out / "bench.json").read_text())["results"]}
    assert ("model.int8.openvino.onnx", "openvino") in timed
    assert ("model.int8.openvino.onnx", "onnxruntime") not in timed
    assert "int8-openvino not timed on ONNX Runtime: its layout is for OpenVINO" in result["bench"].reason


def test_openvino_off_then_on_reruns_only_eval_bench_and_report(
    openvino_run: tuple[Path, PipelineResult], digits_checkpoint: Path, tmp_path: Path
) -> None:
    pytest.importorskip("openvino")
    from edgeres.pipeline import OpenVinoSettings
    from edgeres.report import summary_table
    from tests.pipeline.conftest import _fast_config

    copied_run = tmp_path / "out"
    shutil.copytree(openvino_run[0], copied_run)
    fast_config = _fast_config(openvino=True)
    off = replace(fast_config, openvino=OpenVinoSettings(enabled=False))
    result = run_pipeline(digits_checkpoint, copied_run, off, calib="digits", progress=False)
    ran = statuses(result)
    assert (
        ran["export"] == ran["quantize"] == "up to date"
        and ran["eval"] == ran["bench"] == ran["report"] == "ran"
    )
    assert not list(copied_run.glob("eval_*openvino*")) and not _openvino_rows(copied_run)
    assert result.report is not None and "openvino" not in summary_table(result.report.data)
    assert "openvino" not in result["eval"].reason + result["bench"].reason
    result = run_pipeline(digits_checkpoint, copied_run, fast_config, calib="digits", progress=False)
    ran = statuses(result)
    assert (
        ran["export"] == ran["quantize"] == "up to date"
        and ran["eval"] == ran["bench"] == ran["report"] == "ran"
    )
    assert (copied_run / "eval_int8-cpu-openvino.json").is_file() and _openvino_rows(copied_run)


def test_second_run_is_up_to_date_and_quick(copied_run: Path, digits_checkpoint: Path, fast_config) -> None:
    start = time.monotonic()
    result = run_pipeline(digits_checkpoint, copied_run, fast_config, calib="digits", progress=False)
    seconds = time.monotonic() - start
    ran = statuses(result)
    assert set(ran.values()) == {"up to date", "skipped"} and ran["report"] == "up to date", ran
    assert seconds < 3.0
    from edgeres.sysinfo import int8_pairs_saturate

    bits = "; cpu: 7-bit weights" if int8_pairs_saturate() else ""  # --weight-bits auto
    assert result["quantize"].reason == f"percentile on 32 images, bias corrected{bits}"  # the note survives
    assert result.report is not None and result.report.data.variants  # read again from the results
    assert "up to date" in format_summary(result)


def test_a_changed_setting_reruns_that_stage_and_the_later_ones(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig
) -> None:
    config = fast_config.override("quantize", method="minmax")
    result = run_pipeline(digits_checkpoint, copied_run, config, calib="digits", progress=False)
    ran = statuses(result)
    assert ran["export"] == "up to date" and ran["fp16"] == FP16_AGAIN
    assert ran["quantize"] == ran["eval"] == ran["bench"] == ran["report"] == "ran"
    assert json.loads((copied_run / "quantize.json").read_text())["method"] == "minmax"


def test_a_touched_input_reruns_only_what_reads_it(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig
) -> None:
    os.utime(copied_run / "model.int8.cpu.onnx")  # now: newer than recorded
    result = run_pipeline(digits_checkpoint, copied_run, fast_config, calib="digits", progress=False)
    ran = statuses(result)
    assert ran["export"] == ran["quantize"] == "up to date", ran  # its output is newer: still up to date
    assert ran["eval"] == ran["bench"] == ran["report"] == "ran"


def test_a_changed_bench_setting_reruns_only_bench_and_report(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig
) -> None:
    (copied_run / "bench.json").unlink()  # a lost output is made again, too
    config = fast_config.override("bench", iters=2, threads=1)
    result = run_pipeline(digits_checkpoint, copied_run, config, calib="digits", progress=False)
    ran = statuses(result)
    assert ran["eval"] == ran["quantize"] == "up to date" and ran["bench"] == ran["report"] == "ran", ran
    rows = json.loads((copied_run / "bench.json").read_text())["results"]
    assert {r["iterations"] for r in rows} == {2}
    # the same run count, now with a time floor too: other settings, so bench runs again
    timed = config.override("bench", iters=2, duration=0.05)
    ran = statuses(run_pipeline(digits_checkpoint, copied_run, timed, calib="digits", progress=False))
    assert ran["quantize"] == "up to date" and ran["bench"] == ran["report"] == "ran", ran
    record = json.loads((copied_run / "bench.json").read_text())
    assert (record["settings"]["iters"], record["settings"]["duration"]) == (2, 0.05)
    again = statuses(run_pipeline(digits_checkpoint, copied_run, timed, calib="digits", progress=False))
    assert again["bench"] == "up to date", again


def test_skipped_on_request_and_stale_outputs_removed(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig
) -> None:
    config = replace(fast_config, skip=("fp16", "bench", "report"))
    result = run_pipeline(digits_checkpoint, copied_run, config, calib="digits", progress=False)
    ran = statuses(result)
    assert ran["fp16"] == ran["bench"] == ran["report"] == "skipped"
    assert result["fp16"].reason.startswith("skipped on request")
    assert ran["eval"] == "ran"  # one variant fewer
    assert not (copied_run / "eval_fp16.json").exists()
    recorded = json.loads((copied_run / STATE_FILE).read_text())["stages"]
    assert recorded.keys() == {"export", "quantize", "eval"}


def test_a_failing_stage_stops_the_run_and_keeps_what_came_before(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig, tmp_path: Path
) -> None:
    empty = tmp_path / "no-images"
    empty.mkdir()
    result = run_pipeline(digits_checkpoint, copied_run, fast_config, calib=str(empty), progress=False)
    ran = statuses(result)
    assert ran["export"] == "up to date" and ran["fp16"] == FP16_AGAIN and ran["quantize"] == "failed"
    failed = result.failed
    assert failed is not None and failed.name == "quantize" and "\n" not in failed.reason and failed.reason
    assert result["eval"].reason == "not run: quantize failed" and not result.ok
    assert (copied_run / "model.fp32.onnx").exists() and (copied_run / "model.int8.cpu.onnx").exists()
    assert "quantize" not in json.loads((copied_run / STATE_FILE).read_text())["stages"]


def test_an_onnx_model_is_copied_and_needs_eval_data(
    first_run: tuple[Path, PipelineResult], fast_config: PipelineConfig, tmp_path: Path
) -> None:
    model = tmp_path / "digits.onnx"
    shutil.copy(first_run[0] / "model.fp32.onnx", model)
    config = replace(fast_config, skip=("fp16", "quantize", "bench", "report"))
    result = run_pipeline(model, tmp_path / "out", config, progress=False)
    assert result["export"].status is Status.RAN and "copied" in result["export"].reason
    assert result["eval"].status is Status.SKIPPED and "--eval" in result["eval"].reason
    result = run_pipeline(model, tmp_path / "out", config, eval_data="digits", progress=False)
    assert result["export"].status is Status.UP_TO_DATE and result["eval"].status is Status.RAN
    data = json.loads((tmp_path / "out" / "eval_fp32.json").read_text())
    assert data["result"]["num_images"] == 64


def test_ctrl_c_leaves_no_half_written_file_and_the_next_run_resumes(
    copied_run: Path, digits_checkpoint: Path, fast_config: PipelineConfig, tmp_path: Path
) -> None:
    config = tmp_path / "edgeres.toml"
    config.write_text(
        '[export]\nexporter = "torchscript"\n[quantize]\ncalib_size = 32\n[eval]\nsize = 64\n'
        "[bench]\nwarmup = 1\nwarmup_ms = 0\niters = 3\n[openvino]\nenabled = false\n"
    )
    assert load_config(config) == fast_config
    state = copied_run / STATE_FILE
    stages = json.loads(state.read_text())
    stages["stages"] = {"export": stages["stages"]["export"]}  # all but export to do again
    state.write_text(json.dumps(stages))
    before = state.stat().st_mtime_ns
    command = [sys.executable, "-m", "edgeres", "pipeline", str(digits_checkpoint), "--calib", "digits",
               "--config", str(config), "-o", str(copied_run), "--no-progress"]  # fmt: skip
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    deadline = time.monotonic() + 120
    while state.stat().st_mtime_ns == before and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # until the first stage has finished (or been skipped)
    child.send_signal(signal.SIGINT)  # in the next stage, or between two
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGINT and err.rstrip().endswith("aborted"), err  # a shell: 130
    assert not [
        p.name for p in copied_run.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME
    ]  # no temporary file left
    recorded = json.loads(state.read_text())["stages"]
    assert "export" in recorded and "report" not in recorded
    result = run_pipeline(digits_checkpoint, copied_run, fast_config, calib="digits", progress=False)
    ran = statuses(result)
    assert all(ran[name] == "up to date" for name in recorded) and ran["report"] == "ran", ran
