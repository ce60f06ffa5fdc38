"""`edgeres demo`: train on the embedded digits, then the pipeline, in one folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the demo's data ships with scikit-learn: pip install edgeres[demo]")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo") / "edgeres-demo"


def test_demo_trains_quantizes_measures_and_reports(run_cli, demo_dir: Path) -> None:
    r = run_cli("demo", "--out", str(demo_dir), "--epochs", "1", "--threads", "2", "--no-progress")
    assert r.code == 0, r.err
    assert "trained resnet20 for 1 epoch in" in r.out and "validation top-1" in r.out
    lines = {line.split()[0]: line for line in r.out.splitlines() if line.strip()}
    for stage in ("export", "fp16", "quantize", "eval", "bench", "report"):
        assert lines[stage].split()[1] == "ran", lines[stage]
    assert "skipped" in lines["engines"]  # with its reason: no TensorRT, or no GPU
    for name in ("train/best.pt", "model.fp32.onnx", "model.int8.cpu.onnx", "report/report.html"):
        assert (demo_dir / name).is_file(), name
    assert f"report: {demo_dir / 'report' / 'report.html'}" in r.out
    assert "INT8" in r.out and "FP32" in r.out  # the report's table
    # the demo's own short timing (50 runs, no time floor), not the pipeline's 3 s per batch
    timed = json.loads((demo_dir / "bench.json").read_text())["settings"]
    assert (timed["batches"], timed["iters"], timed["duration"], timed["warmup_ms"]) == ([1, 16], 50, None, 0)


def test_a_second_demo_reuses_everything(run_cli, demo_dir: Path) -> None:
    before = (demo_dir / "train" / "best.pt").stat().st_mtime_ns
    # a run recorded before a setting existed was made with its default: still the same recipe
    metrics = demo_dir / "train" / "metrics.json"
    recorded = json.loads(metrics.read_text())
    del recorded["settings"]["normalize"]
    metrics.write_text(json.dumps(recorded))
    # --threads changes speed only: the training run is still the same recipe
    r = run_cli("demo", "--out", str(demo_dir), "--epochs", "1", "--no-progress")
    assert r.code == 0, r.err
    assert "reused the trained resnet20" in r.out
    assert (demo_dir / "train" / "best.pt").stat().st_mtime_ns == before
    status = {line.split()[0]: line for line in r.out.splitlines() if line.split()[:1]}
    for stage in ("export", "fp16", "quantize", "eval"):
        assert "up to date" in status[stage], status[stage]
    assert status["bench"].split()[1] == "ran"  # other threads: latency is measured again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "resnet50"], "ImageNet net"),
        (["--arch", "resnet7"], "unknown model"),
    ],
)
def test_demo_bad_input_is_one_line(run_cli, tmp_path: Path, args: list[str], message: str) -> None:
    r = run_cli("demo", "--out", str(tmp_path / "d"), *args)
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    r = run_cli("demo", "--out", str(tmp_path / "d"), "--epochs", "0")  # click's own usage error
    assert r.code == 2 and "--epochs" in r.err and not (tmp_path / "d").exists()


def test_demo_out_must_be_a_folder(run_cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = run_cli("demo", "--out", str(blocker))
    assert r.code == 2 and "is a file" in r.err
    r = run_cli("demo", "--out", str(blocker / "sub"))
    assert r.code == 2 and r.err.startswith("error:") and len(r.err.strip().splitlines()) == 1
