"""Grouping results by variant, precision labels, the baseline, drops and latency ratios."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgeres.errors import UsageError
from edgeres.report import load_results
from edgeres.report.combine import FP16_ON_CPU
from tests.report import handmade
from tests.report.fixtures import Results, rewrite

TEN = {str(d): (9, 10) for d in range(10)}


def test_real_results_group_into_one_variant_per_model_file(results: Results) -> None:
    data = load_results(results.all)
    by_label = {v.label: v for v in data.variants}
    expected = {"FP32", "INT8"} | ({"FP16"} if results.fp16 else set())
    assert set(by_label) == expected
    assert data.variants[0].label == "FP32" and data.variants[0].baseline
    assert data.baseline is by_label["FP32"] and by_label["FP32"].model == "r20.onnx"
    int8 = by_label["INT8"]
    assert (int8.precision, int8.target, int8.backend) == ("int8", "cpu", "onnxruntime")
    assert int8.size_bytes == results.int8.stat().st_size
    assert by_label["FP32"].size_bytes == results.fp32.stat().st_size
    assert int8.accuracy is not None and int8.accuracy.source == str(results.eval_int8)  # eval wins
    evaluated = json.loads(results.eval_int8.read_text())
    assert int8.agreement == pytest.approx(evaluated["reference"]["agreement"])
    ref_top1 = evaluated["reference"]["result"]["top1"]
    assert int8.drop == pytest.approx(100 * (ref_top1 - evaluated["result"]["top1"]))
    assert {c.name for c in int8.class_changes} == set(evaluated["result"]["per_class"])
    assert data.title == "resnet20: " + " / ".join(v.precision.upper() for v in data.variants)
    assert data.environment is not None and data.environment.threads == 1
    assert [s.kind for s in data.sources] == [
        "eval",
        "eval",
        *(["eval"] if results.fp16 else []),
        "quantize",
        "bench",
    ]


def test_latency_ratios_are_the_medians_over_fp32s(results: Results) -> None:
    data = load_results(results.all)
    rows = json.loads(results.bench.read_text())["results"]
    mean = {(r["model"], r["batch"]): r["mean_ms"] for r in rows}
    median = {(r["model"], r["batch"]): r["median_ms"] for r in rows}
    assert data.batches == (1, 2)
    for v in data.variants:
        assert [r.batch for r in v.latency] == [1, 2]
        for r in v.latency:
            assert r.mean_ms == mean[(v.model, r.batch)] and r.median_ms == median[(v.model, r.batch)]
            if r.caveat is not None:  # FP16 timed on the CPU: no ratio
                assert v.precision == "fp16" and r.ratio is None
                continue
            assert r.ratio == pytest.approx(median[(v.model, r.batch)] / median[("r20.onnx", r.batch)])
    assert all(r.ratio == 1.0 for r in data.baseline.latency)


def test_known_numbers(tmp_path: Path) -> None:
    bench = handmade.bench(
        tmp_path / "bench.json",
        [
            handmade.row("m.onnx", 1, 10.0),
            handmade.row("m.onnx", 8, 40.0),
            handmade.row("m.int8.onnx", 1, 4.0),
            handmade.row("m.int8.onnx", 8, 10.0, cv=0.3),
            handmade.row("m.fp16.onnx", 1, 12.5),
            handmade.row(
                "m.int8.onnx", 1, 1.0, device="cuda:0", backend="onnxruntime"
            ),  # no FP32 on cuda: no ratio
            handmade.row("m.fp16.onnx", 8, 0, error="out of memory"),
        ],
    )
    worse = dict(TEN, **{"3": (5, 10), "7": (10, 10)})
    e_int8 = handmade.evaluation(tmp_path / "e8.json", "m.int8.onnx", worse, reference=("m.onnx", TEN, 0.93))
    e_fp32 = handmade.evaluation(tmp_path / "e32.json", "m.onnx", TEN, size_bytes=4_000_000)
    data = load_results([bench, e_int8, e_fp32])
    v = {x.label: x for x in data.variants}
    assert list(v) == ["FP32", "FP16", "INT8"]  # old bench files say fp32 for all: the names tell
    assert v["INT8"].latency_at(1, "onnxruntime/cpu").ratio == pytest.approx(0.4)
    assert v["INT8"].latency_at(8, "onnxruntime/cpu").ratio == pytest.approx(0.25)
    assert v["INT8"].latency_at(1, "onnxruntime/cuda:0").ratio is None
    fp16 = v["FP16"].latency_at(1)
    assert fp16 is not None and fp16.ratio is None and fp16.caveat == FP16_ON_CPU  # FP16 on a CPU: no ratio
    assert v["FP16"].latency_at(8).error == "out of memory"
    assert v["INT8"].drop == pytest.approx(100 * (0.9 - 0.87))
    assert v["INT8"].agreement == 0.93
    changes = {c.name: c.change for c in v["INT8"].class_changes}
    assert changes["3"] == pytest.approx(-40.0) and changes["7"] == pytest.approx(10.0) and changes["0"] == 0
    assert v["FP32"].size_bytes == 4_000_000 and v["INT8"].size_bytes is None
    assert v["FP16"].accuracy is None and v["FP16"].drop is None
    notes = "\n".join(data.notes)
    assert "FP16 (m.fp16.onnx): no accuracy" in notes
    assert "INT8 at batch 8 on onnxruntime/cpu is noisy (cv 30%)" in notes
    assert "FP16 at batch 8 on onnxruntime/cpu did not run: out of memory" in notes
    assert "INT8 (m.int8.onnx): size unknown" in notes
    assert data.environment is not None and data.environment.gpus == ("Test GPU (sm 8.7, 8.0 GiB)",)


def test_precision_comes_from_the_model_file_when_the_json_does_not_say(
    results: Results, tmp_path: Path
) -> None:
    shutil.copy(results.int8, tmp_path / "quantized.onnx")  # no hint in the name
    shutil.copy(results.fp32, tmp_path / "plain.onnx")
    e1 = handmade.evaluation(tmp_path / "e1.json", "quantized.onnx", TEN, reference=("plain.onnx", TEN, 1.0))
    data = load_results([e1])
    assert {v.model: v.precision for v in data.variants} == {"plain.onnx": "fp32", "quantized.onnx": "int8"}
    assert data.baseline is not None and data.baseline.model == "plain.onnx"
    assert data.baseline.size_bytes == results.fp32.stat().st_size  # measured: the file is there


def test_a_model_is_matched_by_file_name_when_its_path_does_not_resolve(
    results: Results, tmp_path: Path
) -> None:
    bench = handmade.bench(tmp_path / "b.json", [handmade.row("/jetson/home/r20.onnx", 1, 5.0)])
    data = load_results([results.eval_fp32, bench])
    assert len(data.variants) == 1
    assert data.variants[0].latency[0].mean_ms == 5.0 and data.variants[0].accuracy is not None


def test_two_int8_targets_and_a_torch_fp16_bench_get_their_own_labels(tmp_path: Path) -> None:
    q = handmade.quantize(
        tmp_path / "q.json",
        "m.fp32.onnx",
        [
            {
                "target": "cpu",
                "path": "m.int8.cpu.onnx",
                "top1": 0.88,
                "agreement": 0.95,
                "drop": 2.0,
                "sensitivity": {"a": 0.01, "b": 0.04},
                "excluded_nodes": ["b"],
            },
            {
                "target": "tensorrt",
                "path": "m.int8.tensorrt.onnx",
                "top1": 0.89,
                "agreement": 0.96,
                "drop": 1.0,
            },
        ],
    )
    b = handmade.bench(
        tmp_path / "b.json",
        [
            handmade.row("m.pt", 1, 20.0, backend="torch", device="cuda"),
            handmade.row("m.pt", 1, 12.0, backend="torch", device="cuda", precision="fp16"),
        ],
    )
    data = load_results([q, b])
    labels = {v.label: v for v in data.variants}
    assert set(labels) == {"FP32", "FP32 m.fp32.onnx", "FP16", "INT8 cpu", "INT8 tensorrt"}
    assert labels["INT8 cpu"].drop == 2.0 and labels["INT8 tensorrt"].agreement == 0.96
    assert labels["INT8 cpu"].sensitivity == (("b", 0.04), ("a", 0.01))
    assert labels["INT8 cpu"].kept_float == ("b",)
    assert labels["FP16"].model == "m.pt" and labels["FP16"].latency[0].ratio == pytest.approx(0.6)
    assert data.baseline is not None and data.baseline.model == "m.pt"  # the FP32 with latency


def test_without_fp32_nothing_is_compared(tmp_path: Path) -> None:
    b = handmade.bench(tmp_path / "b.json", [handmade.row("m.int8.onnx", 1, 2.0)])
    data = load_results([b])
    assert data.baseline is None and data.variants[0].latency[0].ratio is None
    assert any("no FP32 variant" in n for n in data.notes)


def test_different_image_sets_are_noted(tmp_path: Path) -> None:
    e32 = handmade.evaluation(tmp_path / "a.json", "m.onnx", TEN)
    e8 = handmade.evaluation(tmp_path / "b.json", "m.int8.onnx", {"0": (1, 2)})
    data = load_results([e32, e8])
    int8 = data.variants[1]
    assert int8.drop == pytest.approx(100 * (0.9 - 0.5)) and int8.agreement is None and not int8.class_changes
    assert any("different images (2 and 100)" in n for n in data.notes)


def test_no_results_is_a_usage_error(tmp_path: Path, copied: Results) -> None:
    with pytest.raises(UsageError, match="no results given"):
        load_results([])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no results in"):
        load_results([tmp_path / "empty"])
    rewrite(copied.bench, lambda d: d.update(results=[]))
    with pytest.raises(UsageError, match="no results in"):
        load_results([copied.bench])
    failed_row = handmade.row("m.onnx", 1, 0, error="model file missing")
    failed = handmade.bench(tmp_path / "failed.json", [failed_row])
    with pytest.raises(UsageError, match=r"no usable results in .*every benchmark row failed"):
        load_results([failed])


def test_an_accuracy_caveat_of_an_eval_file_becomes_one_note(tmp_path: Path) -> None:
    """An INT8 model scored on a CPU whose kernels saturate it: the report says so, once."""
    caveat = "this CPU has no VNNI: onnxruntime's int8 kernels add pairs of products in 16 bits"
    e_fp32 = handmade.evaluation(tmp_path / "e32.json", "m.onnx", TEN)
    files = []
    for name in ("e8.json", "e8-again.json"):
        path = handmade.evaluation(tmp_path / name, "m.int8.onnx", TEN, reference=("m.onnx", TEN, 1.0))
        data = json.loads(path.read_text())
        data["caveat"] = caveat
        path.write_text(json.dumps(data))
        files.append(path)
    notes = load_results([e_fp32, *files]).notes
    assert [n for n in notes if "VNNI" in n] == [f"m.int8.onnx: {caveat}"]
    assert not [n for n in load_results([e_fp32]).notes if "VNNI" in n]
