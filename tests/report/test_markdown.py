"""report.md shows the inputs' text as text, and the plots never set a GPU time against a CPU one silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeres.report import load_results
from edgeres.report.markdown import render_markdown
from tests.report import handmade


def test_text_from_the_inputs_is_escaped_in_markdown(tmp_path: Path) -> None:
    classes = {"<b>cat</b>": (1, 2), "a|b & c": (2, 2)}
    e32 = handmade.evaluation(tmp_path / "a.json", "R&D <x>.onnx", classes)
    e8 = handmade.evaluation(
        tmp_path / "b.json", "R&D <x>.int8.onnx", {"<b>cat</b>": (2, 2), "a|b & c": (1, 2)},
        reference=("R&D <x>.onnx", classes, 0.5),
    )  # fmt: skip
    md = render_markdown(load_results([e32, e8], title="<i>R&D</i> | results"))
    assert md.startswith("# &lt;i&gt;R&amp;D&lt;/i&gt; | results\n")
    assert "<b>" not in md and "<i>" not in md and "<x>" not in md.replace("`R&D <x>", "")
    assert "| &lt;b&gt;cat&lt;/b&gt; |" in md and "| a\\|b &amp; c |" in md  # the per-class table
    assert "model `R&D <x>.onnx`" in md  # a code span shows a path literally
    row = next(line for line in md.splitlines() if line.startswith("| a\\|b"))
    assert len(re.split(r"(?<!\\)\|", row)) == 4  # class and one variant: the pipe split no cell


def test_a_path_with_backticks_stays_one_code_span(tmp_path: Path) -> None:
    e32 = handmade.evaluation(tmp_path / "a.json", "odd`name.onnx", {"cat": (1, 2)})
    md = render_markdown(load_results([e32]))
    assert "model ``odd`name.onnx``" in md


def test_the_accuracy_latency_plot_names_the_backend_of_a_point_measured_elsewhere(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from edgeres.report.plots import make_plots

    classes = {"cat": (8, 10)}
    e32 = handmade.evaluation(tmp_path / "a.json", "m.onnx", classes, precision="fp32")
    e8 = handmade.evaluation(
        tmp_path / "b.json", "m.int8.engine", {"cat": (7, 10)}, precision="int8",
        reference=("m.onnx", classes, 0.9),
    )  # fmt: skip
    bench = handmade.bench(
        tmp_path / "c.json",
        [
            handmade.row("m.onnx", 1, 4.0),  # FP32 on the CPU only
            handmade.row("m.int8.engine", 1, 0.5, precision="int8", backend="tensorrt", device="cuda"),
        ],
    )
    plots = {p.name: p for p in make_plots(load_results([e32, e8, bench]))}
    svg = plots["accuracy-latency"].svg
    assert svg is not None
    assert "INT8 (tensorrt/cuda, batch 1)" in svg and "FP32 (onnxruntime/cpu, batch 1)" in svg


def test_class_and_file_names_never_become_links_or_images(run_cli, tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    evil = {
        "![](http://evil.example/pixel.png)": (1, 2),
        "[x](javascript:alert(1))": (2, 2),
        "www.evil.example": (1, 2),
    }
    e32 = handmade.evaluation(tmp_path / "a.json", "[m](javascript:alert(2)).onnx", evil)
    e8 = handmade.evaluation(
        tmp_path / "b.json", "![](http://evil.example/m.int8.onnx)",
        {**{k: (2, 2) for k in evil}, "[x](javascript:alert(1))": (1, 2)},  # every class changed: all shown
        reference=("[m](javascript:alert(2)).onnx", evil, 0.5),
    )  # fmt: skip
    r = run_cli("report", str(e32), str(e8), "-o", str(tmp_path / "rep"), "--title", "[t](javascript:x) _u_")
    assert r.code == 0, r.err
    md = (tmp_path / "rep" / "report.md").read_text()
    page = MarkdownIt("commonmark").enable("table").render(md)
    assert "<a " not in page and "<img" not in page and "<em>" not in page
    assert "![](http://evil.example/pixel.png)" in page  # still shown, as text
    assert "javascript:alert(1)" in page.replace("\\", "")
