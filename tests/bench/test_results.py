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
