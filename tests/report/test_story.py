"""What the report shows at a glance: median and p99, caveated rows, the sign of Δ top-1, one model
per report, the classes that changed most, the prediction flips, a fair accuracy axis, provenance."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgeres.errors import UsageError
from edgeres.report import load_results, summary_table
from edgeres.report.changes import TOP_CLASSES
from edgeres.report.combine import FP16_ON_CPU, OPENVINO_LAYOUT_ON_ORT, TENSORRT_LAYOUT_ON_CPU
from edgeres.report.markdown import render_markdown
from edgeres.report.tables import signed
from edgeres.version import __version__
from tests.report import handmade

TEN = {str(d): (9, 10) for d in range(10)}


def _row(model: str, batch: int, mean: float, median: float, **kw: Any) -> dict[str, Any]:
    r = handmade.row(model, batch, mean, **kw)
    r.update(median_ms=median, p99_ms=median * 3)
    return r


def test_the_headline_is_the_median_with_p99_and_ratios_are_of_medians(tmp_path: Path) -> None:
    rows = [_row("m.onnx", 1, 0.733, 0.449), _row("m.int8.onnx", 1, 0.3, 0.2, precision="int8")]
    data = load_results([handmade.bench(tmp_path / "b.json", rows)])
    int8 = data.variants[1].latency_at(1)
    assert int8 is not None and int8.ratio == pytest.approx(0.2 / 0.449)  # the means give 0.41
    text = summary_table(data)
    assert "batch 1 median / p99 ms" in text.splitlines()[0]
    assert "0.449 / 1.347" in text and "0.200 / 0.600 (0.45x)" in text and "0.733" not in text
    md = render_markdown(data).replace("\\", "")
    assert "0.200 / 0.600 (0.45x)" in md and "ratio of medians" in md


def test_the_openvino_layout_is_caveated_on_onnx_runtime_only(tmp_path: Path) -> None:
    rows = [
        handmade.row("m.onnx", 1, 10.0),
        handmade.row("m.onnx", 1, 12.0, backend="openvino"),
        handmade.row("m.int8.openvino.onnx", 1, 20.0, precision="int8"),
        handmade.row("m.int8.openvino.onnx", 1, 3.0, precision="int8", backend="openvino"),
    ]
    made = [{"target": "openvino", "path": "m.int8.openvino.onnx"}]
    quant = handmade.quantize(tmp_path / "q.json", "m.onnx", made)
    data = load_results([handmade.bench(tmp_path / "b.json", rows), quant])
    by = {v.model: v for v in data.variants}
    on_ort = by["m.int8.openvino.onnx"].latency_at(1, "onnxruntime/cpu")
    on_ov = by["m.int8.openvino.onnx"].latency_at(1, "openvino/cpu")
    assert on_ort is not None and on_ort.caveat == OPENVINO_LAYOUT_ON_ORT and on_ort.ratio is None
    assert on_ov is not None and on_ov.caveat is None and on_ov.ratio == pytest.approx(0.25)


def test_fp16_and_the_tensorrt_layout_timed_on_a_cpu_are_caveated_and_get_no_ratio(tmp_path: Path) -> None:
    rows = [
        handmade.row("m.onnx", 1, 10.0),
        handmade.row("m.fp16.onnx", 1, 30.0),
        handmade.row("m.int8.onnx", 1, 25.0),
        handmade.row("m.int8.cpu.onnx", 1, 5.0),
        handmade.row("m.int8.onnx", 1, 1.0, device="cuda:0", backend="tensorrt"),
    ]
    quant = handmade.quantize(
        tmp_path / "q.json",
        "m.onnx",
        [{"target": "tensorrt", "path": "m.int8.onnx"}, {"target": "cpu", "path": "m.int8.cpu.onnx"}],
    )
    data = load_results([handmade.bench(tmp_path / "b.json", rows), quant])
    by = {v.model: v for v in data.variants}
    fp16, trt = by["m.fp16.onnx"].latency_at(1), by["m.int8.onnx"].latency_at(1, "onnxruntime/cpu")
    cpu = by["m.int8.cpu.onnx"].latency_at(1)
    engine = by["m.int8.onnx"].latency_at(1, "tensorrt/cuda:0")
    assert fp16 is not None and fp16.caveat == FP16_ON_CPU and fp16.ratio is None
    assert trt is not None and trt.caveat == TENSORRT_LAYOUT_ON_CPU and trt.ratio is None
    assert cpu is not None and cpu.caveat is None and cpu.ratio == pytest.approx(0.5)
    assert engine is not None and engine.caveat is None
    text = summary_table(data)
    assert f"† {TENSORRT_LAYOUT_ON_CPU}: left out of the ratios" in text and "25.00 / 27.50†" in text
    md = render_markdown(data)
    assert f"† {TENSORRT_LAYOUT_ON_CPU} (left out of the ratios)." in md.replace("\\", "")
    assert json.loads(json.dumps(data.to_dict()))["variants"][1]["latency"][0]["caveat"] == FP16_ON_CPU


def test_a_caveat_the_bench_file_states_is_shown_and_keeps_the_row_out_of_the_ratios(tmp_path: Path) -> None:
    stated = "timed under load: not representative"
    rows = [handmade.row("m.onnx", 1, 10.0), handmade.row("m.int8.cpu.onnx", 1, 5.0, precision="int8")]
    rows[1]["caveat"] = stated
    data = load_results([handmade.bench(tmp_path / "b.json", rows)])
    row = data.variants[1].latency_at(1)
    assert row is not None and row.caveat == stated and row.ratio is None
    assert f"† {stated}: left out of the ratios" in summary_table(data)


def test_delta_top1_is_negative_for_a_loss(tmp_path: Path) -> None:
    worse = dict(TEN, **{"3": (5, 10)})
    e8 = handmade.evaluation(tmp_path / "e8.json", "m.int8.onnx", worse, reference=("m.onnx", TEN, 0.96))
    e32 = handmade.evaluation(tmp_path / "e32.json", "m.onnx", TEN)
    data = load_results([e32, e8])
    lines = summary_table(data).splitlines()
    assert "Δ top-1 pts" in lines[0] and "drop" not in lines[0]
    int8 = next(line for line in lines if line.startswith("INT8"))
    assert " -4.00 " in int8
    assert data.to_dict()["variants"][1]["top1_change_points"] == pytest.approx(-4.0)


def test_no_change_in_top1_reads_plus_zero_not_minus_zero(tmp_path: Path) -> None:
    """The same accuracy (a difference of -0.0, or -1e-15 from rounding) is no loss."""
    third = {str(i): (1, 3) for i in range(10)}  # 1/3 per class: 33.33...% both ways
    e16 = handmade.evaluation(tmp_path / "e16.json", "m.fp16.onnx", third, reference=("m.onnx", third, 1.0))
    e32 = handmade.evaluation(tmp_path / "e32.json", "m.onnx", third)
    lines = summary_table(load_results([e32, e16])).splitlines()
    fp16 = next(line for line in lines if line.startswith("FP16"))
    assert " +0.00 " in fp16 and "-0.00" not in fp16
    assert signed(-0.0) == "+0.00" and signed(-1e-12) == "+0.00" and signed(-0.004) == "+0.00"
    assert signed(-0.556) == "-0.56" and signed(0.05, 1) == "+0.1" and signed(-0.04, 1) == "+0.0"


def test_results_of_different_models_are_refused(tmp_path: Path, run_cli) -> None:
    q50 = handmade.quantize(tmp_path / "q50.json", "r50.onnx", [{"target": "cpu", "path": "r50.int8.onnx"}])
    q18 = handmade.quantize(tmp_path / "q18.json", "r18.onnx", [{"target": "cpu", "path": "r18.int8.onnx"}])
    handmade.rewrite_meta(q18, arch="resnet18")
    with pytest.raises(UsageError, match=r"different models \(.*resnet8: r50.onnx, r50.int8.onnx") as e:
        load_results([q50, q18])
    assert "resnet18: r18.onnx, r18.int8.onnx" in str(e.value)
    r = run_cli("report", str(q50), str(q18), "-o", str(tmp_path / "rep"))
    assert r.code == 2 and r.err.startswith("error: the results hold different models")
    assert r.err.count("\n") == 1 and "run edgeres report once per model" in r.err
    assert not (tmp_path / "rep").exists()
    assert load_results([q50]).variants  # one model alone is fine


def _hundred(tmp_path: Path) -> list[Path]:
    base = {f"class{i:02d}": (18, 18) for i in range(100)}
    int8 = dict(base, class07=(17, 18), class42=(14, 18), class99=(16, 18), class50=(18, 18))
    e8 = handmade.evaluation(tmp_path / "e8.json", "m.int8.onnx", int8, reference=("m.onnx", base, 0.99))
    return [handmade.evaluation(tmp_path / "e32.json", "m.onnx", base), e8]


def test_a_hundred_classes_show_the_ones_that_changed_with_counts(tmp_path: Path) -> None:
    data = load_results(_hundred(tmp_path))
    md = render_markdown(data).replace("\\", "")
    section = md.split("## Per-class accuracy change against FP32 (points)")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| class")]
    assert [r.split("|")[1].strip() for r in rows] == ["class", "class42", "class99", "class07"]
    assert "| class07 | -5.6 (17/18, was 18/18) |" in section  # one image of 18 is visibly one image
    assert "97 more classes: 97 unchanged (all of them in report.json)" in section
    changes = data.to_dict()["variants"][1]["class_changes"]
    assert len(changes) == 100 and changes["class42"]["variant_correct"] == 14


def test_the_per_class_figure_stays_readable_for_a_hundred_classes(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from edgeres.report.plots import make_plots

    base = {f"class{i:02d}": (18, 18) for i in range(100)}
    int8 = {k: (17 - i % 3, 18) for i, k in enumerate(base)}  # every class changed
    e8 = handmade.evaluation(tmp_path / "e8.json", "m.int8.onnx", int8, reference=("m.onnx", base, 0.9))
    data = load_results([handmade.evaluation(tmp_path / "e32.json", "m.onnx", base), e8])
    svg = next(p for p in make_plots(data) if p.name == "per-class").svg
    assert svg is not None
    ticks = re.findall(r">(class\d\d)<", svg)  # the tick labels, as SVG text
    assert 0 < len(set(ticks)) <= TOP_CLASSES
    assert "the 10 classes that changed most; 90 more classes in the tables" in svg


def test_flips_are_shown_most_frequent_first(tmp_path: Path) -> None:
    e32 = handmade.evaluation(tmp_path / "e32.json", "m.onnx", TEN)
    e8 = handmade.evaluation(tmp_path / "e8.json", "m.int8.onnx", TEN, reference=("m.onnx", TEN, 0.95))
    data = json.loads(e8.read_text())
    flips = [("cat", "dog", 3), ("dog", "cat", 1)] + [(f"c{i:02d}", "x", 1) for i in range(11)]
    data["reference"]["flips"] = [{"reference": b, "model": a, "count": n} for b, a, n in flips]
    e8.write_text(json.dumps(data))
    report = load_results([e32, e8])
    md = render_markdown(report).replace("\\", "")
    section = md.split("## Predictions changed: INT8 against FP32")[1].split("\n## ")[0]
    assert "15 images predicted differently" in section
    assert section.index("| cat | dog | 3 |") < section.index("| dog | cat | 1 |")
    assert "| c07 | x | 1 |" in section and "| c08 |" not in section
    assert "3 more pairs, 3 images (all of them in report.json)" in section
    assert len(report.to_dict()["variants"][1]["flips"]) == 13


@pytest.mark.parametrize(("drop", "low"), [(0.5, 88.0), (3.0, 81.0), (0.0, 88.0)])
def test_the_accuracy_axis_does_not_stretch_a_small_drop_into_a_cliff(
    tmp_path: Path, drop: float, low: float
) -> None:
    from edgeres.report.plots import accuracy_range

    e32 = handmade.evaluation(tmp_path / "e32.json", "m.onnx", {"a": (90, 100)})
    data = load_results([e32])
    assert accuracy_range(data, [90.0, 90.0 - drop]) == (pytest.approx(low), pytest.approx(90.5))


def test_the_report_says_what_produced_it(tmp_path: Path) -> None:
    quant = handmade.quantize(tmp_path / "q.json", "m.onnx", [{"target": "cpu", "path": "m.int8.onnx"}])
    bench = handmade.bench(tmp_path / "b.json", [handmade.row("m.onnx", 1, 1.0)])
    data = load_results([quant, bench])
    md = render_markdown(data)
    section = md.split("## How it was made")[1].split("\n## ")[0]
    assert "- calibration: percentile, 64 images; cache c.json" in section.replace("\\", "")
    assert "- threads used: 2" in section and f"- report made by: edgeres {__version__}" in section
    assert re.search(r"- report date: \d{4}-\d\d-\d\d \d\d\\?:\d\d UTC", section)
    assert "- report made on: " in section
    assert data.to_dict()["provenance"]["calibration"].startswith("percentile, 64 images")


def test_the_report_says_what_bias_correction_and_weight_bits_did(tmp_path: Path) -> None:
    targets = [
        {
            "target": "cpu",
            "path": "m.int8.cpu.onnx",
            "weight_bits": 7,
            "bias_correction": {"layers": 20, "images": 512, "seconds": 0.7, "mean_abs_shift": 0.0123},
        },
        {"target": "tensorrt", "path": "m.int8.tensorrt.onnx"},
    ]
    provenance = load_results([handmade.quantize(tmp_path / "q.json", "m.onnx", targets)]).to_dict()[
        "provenance"
    ]
    assert provenance["bias correction"] == "cpu: 20 layers on 512 images, mean |shift| 0.0123"
    assert provenance["quantize targets"] == "cpu (7-bit weights), tensorrt"
    plain = handmade.quantize(tmp_path / "p.json", "m.onnx", [{"target": "cpu", "path": "m.int8.onnx"}])
    assert load_results([plain]).to_dict()["provenance"]["bias correction"] == "off"
    assert load_results([plain]).to_dict()["provenance"]["weight rounding"] == "nearest"


def test_the_report_says_what_learned_rounding_did(tmp_path: Path) -> None:
    rounding = {"method": "adaround", "layers": 20, "images": 512, "seconds": 95.0, "flipped": 0.123,
                "error_reduction": 0.31, "reused_layers": 4}  # fmt: skip
    targets = [{"target": "tensorrt", "path": "m.int8.tensorrt.onnx", "rounding": rounding}]
    data = load_results([handmade.quantize(tmp_path / "q.json", "m.onnx", targets)])
    assert data.to_dict()["provenance"]["weight rounding"] == (
        "tensorrt: learned (adaround), 20 layers on 512 images, 12.3% of weights rounded the other way, "
        "layer output error 31% lower (4 layers from the cache)"
    )
    md = render_markdown(data).replace("\\", "")
    assert "- weight rounding: tensorrt: learned (adaround), 20 layers" in md
