"""build_report: report.md, report.json and report.html, the plots, and nothing left after a failure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgeres.errors import UsageError
from edgeres.report import build_report, load_results, summary_table
from tests.report import handmade
from tests.report.fixtures import Results, rewrite

PLOTS = ("latency", "accuracy-latency", "per-class", "sensitivity", "sizes")


def _figures(html: str) -> dict[str, str]:
    """Each <figure id="plot-NAME"> and what it holds."""
    return dict(re.findall(r'<figure id="plot-([\w-]+)">(.*?)</figure>', html, flags=re.S))


def _with_sensitivity(copied: Results) -> None:
    def add(d: dict) -> None:
        d["targets"][0]["sensitivity"] = {"/layer3/layer3.2/conv2/Conv": 0.04, "/conv1/Conv": 0.01}
        d["targets"][0]["excluded_nodes"] = ["/layer3/layer3.2/conv2/Conv"]

    rewrite(copied.quant, add)


def test_writes_the_three_files_with_every_plot(copied: Results, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _with_sensitivity(copied)
    out = tmp_path / "out" / "nested"
    paths = build_report(copied.all, out)
    assert (paths.markdown, paths.json, paths.html) == (
        out / "report.md",
        out / "report.json",
        out / "report.html",
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "report.html",
        "report.json",
        "report.md",
    ]  # no temp files
    data = json.loads(paths.json.read_text())
    assert data == paths.data.to_dict()
    assert data["baseline"] == paths.data.baseline.key
    int8 = next(v for v in data["variants"] if v["precision"] == "int8")
    assert int8["sensitivity"] == {"/layer3/layer3.2/conv2/Conv": 0.04, "/conv1/Conv": 0.01}
    assert [r["batch"] for r in int8["latency"]] == [1, 2] and int8["latency"][0]["ratio_to_fp32"] > 0
    assert data["sources"][0] == {"path": str(copied.eval_fp32), "kind": "eval"}
    md = paths.markdown.read_text()
    assert (
        "| variant | precision | size MB | top-1 | Δ top-1 pts | agree | runs on "
        "| batch 1 median / p99 ms | batch 2 median / p99 ms |" in md
    )
    assert "## Layer sensitivity: INT8" in md and "/layer3/layer3.2/conv2/Conv" in md
    assert "## Environment" in md and "onnxruntime" in md
    html = paths.html.read_text()
    figures = _figures(html)
    assert list(figures) == list(PLOTS)
    for name, body in figures.items():
        assert body.count("<svg") == 1, name
    assert "/layer3/layer3.2/conv2/Conv" in figures["sensitivity"]  # text stays text in the SVG
    for bad in ("http://", "https://", "<script", "<link", "<img", "@import", "url(http"):
        assert bad not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # the plots' SVG ids do not clash


def test_a_plot_without_data_says_why(results: Results, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    paths = build_report([results.bench], tmp_path / "out")
    figures = _figures(paths.html.read_text())
    assert "<svg" in figures["latency"] and "<svg" in figures["sizes"]
    assert (
        "<svg" not in figures["accuracy-latency"]
        and "No variant has both an accuracy" in figures["accuracy-latency"]
    )
    assert "No per-class comparison" in figures["per-class"]
    assert "No per-layer sensitivity" in figures["sensitivity"]
    assert "no accuracy; run edgeres eval --json" in paths.markdown.read_text()


def test_text_from_the_inputs_is_escaped(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    evil = {"<script>alert(1)</script>": (1, 2), "$x$ & y": (2, 2)}
    e32 = handmade.evaluation(tmp_path / "a.json", "<b>m</b>.onnx", evil)
    e8 = handmade.evaluation(
        tmp_path / "b.json", "<b>m</b>.int8.onnx", evil, reference=("<b>m</b>.onnx", evil, 1.0)
    )
    rows = [handmade.row("<b>m</b>.onnx", 1, 2.0), handmade.row("<b>m</b>.int8.onnx", 1, 1.0)]
    bench = handmade.bench(tmp_path / "c.json", rows)
    paths = build_report([e32, e8, bench], tmp_path / "out", title="<i>title</i>")
    html = paths.html.read_text()
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;i&gt;title&lt;/i&gt;" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<svg" in _figures(html)["per-class"]


def test_without_matplotlib_the_html_has_tables_and_a_note(
    results: Results, tmp_path: Path, monkeypatch, caplog
) -> None:
    from edgeres.report import plots

    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    paths = build_report(results.all, tmp_path / "out")
    html = paths.html.read_text()
    assert "<svg" not in html and "<table" in html and "matplotlib is not installed" in html
    assert "matplotlib is not installed" in caplog.text
    assert paths.markdown.exists() and paths.json.exists()


def test_summary_table(results: Results) -> None:
    text = summary_table(load_results(results.all))
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["variant", "precision", "size", "MB"]
    fp32 = next(line for line in lines if line.startswith("FP32 "))
    assert "baseline" in fp32 and "(1.00x)" in fp32 and "onnxruntime/cpu" in fp32
    assert any(line.startswith("INT8 ") and "x)" in line for line in lines)


def test_a_title_can_replace_a_loaded_one(results: Results, tmp_path: Path) -> None:
    data = load_results([results.bench])
    paths = build_report(data, tmp_path / "out", title="Orin Nano, 15 W")
    assert paths.data.title == "Orin Nano, 15 W" and "# Orin Nano, 15 W" in paths.markdown.read_text()


def test_an_output_path_that_is_a_file_is_refused_before_writing(results: Results, tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match=r"output folder '.*taken' is a file") as info:
        build_report(results.all, blocker)
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match=r"cannot create output folder .*taken. is a file"):
        build_report(results.all, blocker / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and blocker.read_text() == "not a folder"


def test_a_failed_write_leaves_nothing_behind(results: Results, tmp_path: Path, monkeypatch) -> None:
    import edgeres.atomic

    real = edgeres.atomic.write_text_atomic

    def fail_on_html(target, text):  # the disk fills up at the last file
        if str(target).endswith(".html"):
            with edgeres.atomic.atomic_path(target) as tmp:
                tmp.write_text(text[:100])
                raise OSError(28, "No space left on device")
        real(target, text)

    monkeypatch.setattr(edgeres.atomic, "write_text_atomic", fail_on_html)
    from edgeres.errors import EdgeresError

    with pytest.raises(EdgeresError, match=r"report\.html': No space left"):  # one line naming the file
        build_report([results.bench], tmp_path / "new")
    assert not (tmp_path / "new").exists()  # made by the call, removed again
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("x")
    with pytest.raises(EdgeresError):
        build_report([results.bench], tmp_path / "old")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["keep.txt"]
