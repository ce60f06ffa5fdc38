"""Statistics, the table and the JSON report of `edgeres.bench.results` (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeres.bench import NOISY_CV, BenchResult, format_table, summarize, to_json
from edgeres.sysinfo import collect


def test_summarize_matches_numpy() -> None:
    times = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0, 5.5, 3.5]
    a = np.array(times)
    s = summarize(times)
    assert s.count == 10
    assert s.mean == pytest.approx(a.sum() / 10)
    assert s.median == pytest.approx(np.median(a)) == pytest.approx(3.75)
    srt = np.sort(a)
    for q, got in ((90, s.p90), (95, s.p95), (99, s.p99)):  # numpy's linear interpolation, by hand
        pos = q / 100 * (len(srt) - 1)
        lo = int(np.floor(pos))
        expected = srt[lo] + (srt[min(lo + 1, len(srt) - 1)] - srt[lo]) * (pos - lo)
        assert got == pytest.approx(expected)
    assert (s.min, s.max) == (1.0, 9.0)
    assert s.std == pytest.approx(np.sqrt(((a - a.mean()) ** 2).mean()))
    assert s.cv == pytest.approx(s.std / s.mean)
    assert s.min <= s.median <= s.p90 <= s.p95 <= s.p99 <= s.max


def test_summarize_edge_cases() -> None:
    one = summarize([2.5])
    assert one.mean == one.median == one.p99 == one.min == one.max == 2.5 and one.cv == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_measured_result_throughput_and_noise() -> None:
    steady = BenchResult.measured(
        model="m.onnx", backend="onnxruntime", device="cpu", precision="fp32", batch=8, threads=2,
        times_ms=[2.0, 2.0, 2.1, 1.9],
    )  # fmt: skip
    assert steady.ok and not steady.noisy and steady.iterations == 4
    assert steady.throughput == pytest.approx(8 / (2.0 / 1000))
    assert steady.compute_mean_ms is None
    noisy = BenchResult.measured(
        model="m.onnx", backend="tensorrt", device="cuda:0", precision="fp16", batch=1, threads=None,
        times_ms=[1.0, 1.0, 1.0, 3.0], compute_ms=[0.5, 0.5, 0.6, 0.7],
    )  # fmt: skip
    assert noisy.cv is not None and noisy.cv > NOISY_CV and noisy.noisy
    assert noisy.compute_mean_ms == pytest.approx(0.575) and noisy.compute_max_ms == 0.7


def test_table_shows_error_rows_and_gpu_column() -> None:
    ok = BenchResult.measured(
        model="a.engine", backend="tensorrt", device="cuda:0", precision="int8", batch=1, threads=None,
        times_ms=[1.0, 1.2], compute_ms=[0.4, 0.5],
    )  # fmt: skip
    bad = BenchResult("b.onnx", "onnxruntime", "cpu", "fp32", 8, error="the model takes batches of 1 only")
    lines = format_table([ok, bad]).splitlines()
    assert lines[0].split()[:5] == ["model", "backend", "device", "prec", "batch"]
    assert "gpu ms" in lines[0] and "0.450" in lines[1]
    assert lines[2].startswith("b.onnx") and lines[2].endswith("error: the model takes batches of 1 only")
    assert format_table([]) == "no results"


def test_json_records_the_environment() -> None:
    r = BenchResult.measured(
        model="a.onnx", backend="onnxruntime", device="cpu", precision="fp32", batch=1, threads=1,
        times_ms=[1.0, 1.1],
    )  # fmt: skip
    report = to_json([r], collect(), threads=1, settings={"warmup": 1})
    report = json.loads(json.dumps(report))  # plain JSON types only
    env = report["environment"]
    assert env["threads"] == 1 and env["cpu_model"] and "onnxruntime" in env["libraries"]
    assert report["settings"] == {"warmup": 1}
    assert report["results"][0]["model"] == "a.onnx" and report["results"][0]["error"] is None


def test_table_headlines_median_and_p99_with_ms_per_image_and_img_s_per_batch() -> None:
    rows = [
        BenchResult.measured(
            model="m.onnx",
            backend="onnxruntime",
            device="cpu",
            precision="fp32",
            batch=b,
            threads=1,
            times_ms=t,
        )
        for b, t in ((1, [1.0, 1.0, 1.0, 7.0]), (8, [4.0, 4.0, 4.0, 4.0]))
    ]
    assert rows[0].images_per_s == pytest.approx(1000.0)  # batch / median, not batch / mean (400)
    assert rows[0].throughput == pytest.approx(400.0) and rows[0].ms_per_image == pytest.approx(1.0)
    assert rows[1].images_per_s == pytest.approx(2000.0) and rows[1].ms_per_image == pytest.approx(0.5)
    lines = format_table(rows).splitlines()
    assert lines[0].split() == [
        "model", "backend", "device", "prec", "batch", "iters", "median", "ms", "p99", "ms", "ms/img",
        "img/s", "cv",
    ]  # fmt: skip
    p99 = float(np.percentile([1.0, 1.0, 1.0, 7.0], 99))
    assert lines[1].split()[5:10] == ["4", "1.000", f"{p99:.3f}", "1.000", "1000.0"]
    assert lines[2].split()[4:10] == ["8", "4", "4.000", "4.000", "0.500", "2000.0"]
    with_ratio = format_table(rows, [1.0, 0.5]).splitlines()
    assert "vs fp32" in with_ratio[0] and with_ratio[1].split()[10] == "1.00x"
    assert with_ratio[2].split()[10] == "0.50x"


def test_table_shows_streams_and_marks_caveated_ratios() -> None:
    row = BenchResult.measured(
        model="m.onnx", backend="onnxruntime", device="cpu", precision="fp16", batch=1, threads=4,
        times_ms=[2.0, 2.0], streams=2, wall_s=0.002, caveat="fp16 on a CPU",
    )  # fmt: skip
    assert row.images_per_s == pytest.approx(1000.0)  # 2 images in 2 ms of wall time, both in flight
    lines = format_table([row], [0.8]).splitlines()
    assert lines[0].split()[5] == "streams" and lines[1].split()[5] == "2"
    assert "0.80x*" in lines[1]


def test_old_files_without_the_new_row_fields_read() -> None:
    from edgeres.records import BenchRecord

    r = BenchResult.measured(
        model="a.onnx", backend="onnxruntime", device="cpu", precision="fp32", batch=1, threads=1,
        times_ms=[1.0, 1.1],
    )  # fmt: skip
    data = json.loads(json.dumps(to_json([r], collect(), threads=1)))
    assert data["results"][0]["streams"] == 1 and data["results"][0]["caveat"] is None
    assert data["results"][0]["ms_per_image"] == pytest.approx(1.05)
    for key in ("streams", "ms_per_image", "images_per_s", "caveat"):
        del data["results"][0][key]
    (old,) = BenchRecord.from_dict(data, strict=True).results
    assert (
        old.streams == 1 and old.caveat is None and old.images_per_s is None and old.median_ms == r.median_ms
    )
