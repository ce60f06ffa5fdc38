"""`edgeres pipeline` from the command line: a run, a second run, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeres.pipeline.context import has_module

FAST = """
[export]
exporter = "torchscript"
[quantize]
calib_size = 32
[bench]
warmup = 1
warmup_ms = 0
[openvino]
enabled = false
"""


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_a_run_then_a_second_run_is_up_to_date(run_cli, resnet20_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")
    config = tmp_path / "edgeres.toml"
    config.write_text(FAST)
    out = tmp_path / "out"
    args = ["pipeline", str(resnet20_checkpoint), "--calib", "digits", "--config", str(config),
            "-o", str(out), "--iters", "3", "--no-progress"]  # fmt: skip
    r = run_cli(*args)
    assert r.code == 0, r.err
    assert "info: [1/7] export: running" in r.err and "info: [3/7] quantize: running" in r.err
    lines = {line.split()[0]: line for line in r.out.splitlines() if line.split()}
    assert lines["export"].split()[1] == "ran" and "model.fp32.onnx" in lines["export"]
    assert lines["quantize"].split()[1] == "ran" and "model.int8.cpu.onnx" in lines["quantize"]
    assert "skipped" in lines["eval"] and "--eval" in lines["eval"]  # not a checkpoint of edgeres train
    if not has_module("tensorrt"):
        assert lines["engines"].split()[1:] == ["skipped", "-", "TensorRT", "not", "installed"]
    assert (out / "bench.json").exists() and (out / "quantize.json").exists()
    timed = json.loads((out / "bench.json").read_text())["settings"]  # --iters alone: a run count
    assert (timed["iters"], timed["duration"], timed["warmup_ms"]) == (3, None, 0.0), timed
    again = run_cli(*args)
    assert again.code == 0, again.err
    table = {line.split()[0]: line for line in again.out.splitlines() if line.split()}
    for stage in ("export", "fp16", "quantize", "bench"):
        assert "up to date" in table[stage], table[stage]
    assert "info: [3/7] quantize: up to date" in again.err
    if has_module("openvino"):  # --openvino overrides the file's enabled = false: bench reruns
        on = run_cli(*args, "--openvino")
        assert on.code == 0, on.err
        backends = {r["backend"] for r in json.loads((out / "bench.json").read_text())["results"]}
        assert backends == {"onnxruntime", "openvino"}, backends
        off = run_cli(*args, "--no-openvino")
        assert off.code == 0, off.err
        backends = {r["backend"] for r in json.loads((out / "bench.json").read_text())["results"]}
        assert backends == {"onnxruntime"}, backends


def test_iters_0_is_a_usage_error_before_anything_is_written(
    run_cli, resnet20_checkpoint: Path, tmp_path: Path
) -> None:
    r = run_cli("pipeline", str(resnet20_checkpoint), "--iters", "0", "-o", str(tmp_path / "out"))
    assert r.code == 2 and r.err == "error: --iters must be at least 1, got 0\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "error: --duration must be a positive number of seconds, got 0.0\n"),
        (
            ["--duration", "inf"],
            "error: bench.duration must be a finite number of seconds above 0, got inf\n",
        ),
        (["--duration", "2", "--iters", "0"], "error: --iters must be at least 1, got 0\n"),
    ],
)
def test_a_bad_duration_is_a_usage_error_before_anything_is_written(
    run_cli, resnet20_checkpoint: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    r = run_cli("pipeline", str(resnet20_checkpoint), *args, "-o", str(tmp_path / "out"))
    assert r.code == 2 and r.err == message
    assert not (tmp_path / "out").exists()


def test_a_model_that_does_not_load_fails_its_stage_and_writes_nothing(run_cli, tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model at all")
    out = tmp_path / "out"
    r = run_cli("pipeline", str(bad), "--calib", "digits", "-o", str(out))
    assert r.code != 0
    errors = error_lines(r.err)
    assert len(errors) == 1 and errors[0].startswith("error: stage export failed: ")
    assert "model.pt" in errors[0]
    assert r.err.rstrip().endswith(errors[0])
    assert "not run: export failed" in r.out
    assert not out.exists()  # a fresh folder with nothing in it is removed again
    assert "all outputs in" not in r.out
    assert f"no outputs: nothing was made, so {out} was removed again" in r.out


def test_an_output_path_that_is_a_file(run_cli, resnet20_checkpoint: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    r = run_cli("pipeline", str(resnet20_checkpoint), "-o", str(target))
    assert r.code == 2 and error_lines(r.err) == [r.err.strip()] and "is a file" in r.err
    r = run_cli("pipeline", str(resnet20_checkpoint), "-o", str(target / "sub"))
    assert r.code == 1 and error_lines(r.err) == [r.err.strip()] and "cannot create output folder" in r.err
    assert target.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_output_folder_that_is_not_writable(run_cli, resnet20_checkpoint: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        r = run_cli("pipeline", str(resnet20_checkpoint), "-o", str(locked))
        assert r.code == 1 and error_lines(r.err) == [r.err.strip()] and "not writable" in r.err
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_bad_input_before_any_stage(run_cli, resnet20_checkpoint: Path, tmp_path: Path) -> None:
    config = tmp_path / "edgeres.toml"
    config.write_text("[bench]\nbatch = [1, 8]\n")
    r = run_cli("pipeline", str(resnet20_checkpoint), "--config", str(config), "-o", str(tmp_path / "o"))
    assert r.code == 2 and error_lines(r.err) == [r.err.strip()]
    assert "bench.batch" in r.err and str(config) in r.err
    r = run_cli("pipeline", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "o"))
    assert r.code == 2 and "does not exist" in r.err
    r = run_cli("pipeline", str(resnet20_checkpoint), "--batch", "0", "-o", str(tmp_path / "o"))
    assert r.code == 2 and "--batch" in r.err
    assert not (tmp_path / "o").exists()
