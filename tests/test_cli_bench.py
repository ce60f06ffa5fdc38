"""`edgeres bench` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeres import load_model
    from edgeres.checkpoint import create_checkpoint
    from edgeres.export import export_onnx

    root = tmp_path_factory.mktemp("cli-bench")
    loaded = load_model(create_checkpoint("resnet20", root / "resnet20.pt"))
    return export_onnx(
        loaded.require_module(), loaded.meta, root / "resnet20.onnx", exporter="torchscript"
    ).path


def test_bench_prints_the_table_and_writes_json(run_cli, onnx_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    missing = tmp_path / "missing.onnx"
    r = run_cli("bench", str(onnx_model), str(missing), "--batch", "1,2", "--warmup", "1", "--iters", "3",
                "--warmup-ms", "0", "--duration", "0", "--threads", "1", "--json", str(out))  # fmt: skip
    assert r.code == 1, r.err  # a failed row fails the command; the others are still shown
    assert r.err.strip().splitlines()[-1].startswith("error: 2 of 4 rows failed")
    lines = r.out.splitlines()
    assert lines[0].split()[:12] == [
        "model", "backend", "device", "prec", "batch", "iters",
        "median", "ms", "p99", "ms", "ms/img", "img/s",
    ]  # fmt: skip
    assert lines[1].split()[:6] == ["resnet20.onnx", "onnxruntime", "cpu", "fp32", "1", "3"]
    assert lines[2].split()[:6] == ["resnet20.onnx", "onnxruntime", "cpu", "fp32", "2", "3"]
    assert lines[3].startswith("missing.onnx") and "error: model file" in lines[3]
    starts = [line for line in r.err.splitlines() if line.startswith("info: timing ")]
    assert starts == [
        f"info: timing {onnx_model}: batch 1,2, at least 3 runs each after warm-up",
        f"info: timing {missing}: batch 1,2, at least 3 runs each after warm-up",
    ]  # what starts is said before each model's silent minutes
    for line in [line for line in r.err.splitlines()[:-1] if line not in starts]:
        assert line.startswith("warning: resnet20.onnx at batch") and "too noisy" in line
    data = json.loads(out.read_text())
    assert data["environment"]["threads"] == 1 and data["environment"]["cpu_count"] >= 1
    assert "libraries" in data["environment"] and "onnxruntime_providers" in data["environment"]
    assert data["settings"]["batches"] == [1, 2] and data["settings"]["iters"] == 3
    assert data["settings"]["duration"] is None and data["settings"]["warmup_ms"] == 0
    assert data["settings"]["streams"] == 1
    assert [(x["batch"], x["error"] is None) for x in data["results"]] == [
        (1, True),
        (2, True),
        (1, False),
        (2, False),
    ]


def test_bench_fails_when_nothing_ran(run_cli, tmp_path: Path) -> None:
    r = run_cli("bench", str(tmp_path / "a.onnx"), str(tmp_path / "b.pt"), "--iters", "3")
    assert r.code == 1
    assert r.err.strip().splitlines() == [
        f"info: timing {tmp_path / 'a.onnx'}: batch 1, at least 3 runs and 3 s each after warm-up",
        f"info: timing {tmp_path / 'b.pt'}: batch 1, at least 3 runs and 3 s each after warm-up",
        f"error: no benchmark ran (model file '{tmp_path / 'a.onnx'}' does not exist); see the table above",
    ]
    assert "a.onnx" in r.out and "b.pt" in r.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iters", "0"], "error: --iters must be at least 1, got 0"),
        (["--duration", "-1"], "error: --duration must be 0 or more seconds, got -1.0"),
        (["--streams", "0"], "error: --streams must be at least 1, got 0"),
        (["--warmup-ms", "-5"], "error: --warmup-ms must be 0 or more, got -5.0"),
        (
            ["--batch", "1,x"],
            "error: --batch takes positive integers separated by commas, like 1,8,32; got '1,x'",
        ),
        (["--batch", "0"], "error: --batch takes positive integers"),
        (["--warmup", "-1"], "error: --warmup must be 0 or more, got -1"),
    ],
)
def test_bench_usage_errors(run_cli, onnx_model: Path, args: list[str], message: str) -> None:
    r = run_cli("bench", str(onnx_model), *args)
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith(message)
    assert r.out == ""


def test_bench_help_has_examples(run_cli) -> None:
    r = run_cli("bench", "--help")
    assert r.code == 0 and "Examples:" in r.out and "edgeres bench resnet20.onnx" in r.out


def test_bench_defaults_time_like_trtexec(run_cli, onnx_model: Path, tmp_path: Path, monkeypatch) -> None:
    """200 ms of warm-up and at least 3 s of timing, with the iteration counts as floors."""
    import edgeres.bench

    seen = []

    def fake(model: str, settings: object) -> list[object]:
        seen.append(settings)
        return []

    monkeypatch.setattr(edgeres.bench, "benchmark", fake)
    run_cli("bench", str(onnx_model))
    (s,) = seen
    assert (s.warmup, s.warmup_ms, s.iters, s.duration, s.streams) == (10, 200.0, 100, 3.0, 1)


def test_bench_several_models_ratio_to_fp32(run_cli, onnx_model: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy.onnx"
    shutil.copy(onnx_model, copy)
    r = run_cli("bench", str(copy), str(onnx_model), "--warmup", "1", "--iters", "3", "--warmup-ms", "0",
                "--duration", "0", "--threads", "1")  # fmt: skip
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "vs fp32" in lines[0]
    column = lines[0].split().index("vs") - 2  # "median ms" and "p99 ms" are two words each
    assert lines[1].split()[column] == "1.00x" and lines[2].split()[column].endswith("x")
    assert lines[3] == "vs fp32: median latency over copy.onnx's at the same batch (below 1: faster)"
    single = run_cli("bench", str(onnx_model), "--iters", "2", "--warmup-ms", "0", "--duration", "0")
    assert "vs fp32" not in single.out


def test_bench_prints_caveats_and_marks_their_ratios(run_cli, tmp_path: Path, monkeypatch) -> None:
    import edgeres.bench
    from edgeres.bench import BenchResult
    from edgeres.bench.compare import TENSORRT_LAYOUT_ON_CPU

    def row(model: str, precision: str, caveat: str | None) -> BenchResult:
        return BenchResult.measured(
            model=model, backend="onnxruntime", device="cpu", precision=precision, batch=1, threads=1,
            times_ms=[2.0, 2.0], caveat=caveat,
        )  # fmt: skip

    rows = {
        "m.onnx": [row("m.onnx", "fp32", None)],
        "q.onnx": [row("q.onnx", "int8", TENSORRT_LAYOUT_ON_CPU)],
        "r.onnx": [row("r.onnx", "int8", None)],
    }
    monkeypatch.setattr(edgeres.bench, "benchmark", lambda model, settings: rows[Path(model).name])
    r = run_cli("bench", str(tmp_path / "m.onnx"), str(tmp_path / "q.onnx"))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "1.00x*" in lines[2] and "1.00x*" not in lines[1]
    assert lines[-1] == f"caveat: q.onnx: {TENSORRT_LAYOUT_ON_CPU} (* in vs fp32)"
    only = run_cli("bench", str(tmp_path / "q.onnx"), str(tmp_path / "r.onnx"))
    assert "vs fp32: no fp32 model among these, no ratios" in only.out
