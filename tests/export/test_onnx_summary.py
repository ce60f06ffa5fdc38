"""`edgeres inspect model.onnx`: inputs, outputs, opset, precision, Q/DQ layout and the stored metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeres.export.onnx_summary import format_onnx_summary, onnx_summary
from tests.tiny_onnx import tiny_classifier as _model


def test_an_fp32_model(tmp_path: Path) -> None:
    s = onnx_summary(_model(tmp_path / "m.onnx", props={"edgeres.arch": "resnet20"}))
    assert s["inputs"] == [{"name": "input", "dtype": "float", "shape": ["batch", 3, 8, 8]}]
    assert s["outputs"] == [{"name": "logits", "dtype": "float", "shape": ["batch", 4]}]
    assert (s["opset"], s["precision"], s["qdq_layout"], s["num_qdq_nodes"]) == (17, "fp32", None, 0)
    assert (s["num_nodes"], s["num_initializers"], s["producer"]) == (2, 1, "test")
    assert s["metadata"] == {"edgeres.arch": "resnet20"}
    assert format_onnx_summary(s) == [
        "inputs       input: float [batch, 3, 8, 8]",
        "outputs      logits: float [batch, 4]",
        f"opset        17 (IR version {s['ir_version']})",
        "precision    fp32",
        "nodes        2, 1 initializers",
        "producer     test",
        "metadata     1 entries:",
        "  edgeres.arch: resnet20",
    ]


@pytest.mark.parametrize(
    ("quantization", "layout"),
    [
        ({"target": "tensorrt", "method": "percentile"}, "tensorrt"),
        ({"target": "cpu"}, "cpu"),
        (None, "unknown"),  # a Q/DQ model from elsewhere
        ("not json", "unknown"),
    ],
)
def test_a_qdq_model_names_its_layout(tmp_path: Path, quantization: object, layout: str) -> None:
    props = {} if quantization is None else {"edgeres.quantization": json.dumps(quantization)}
    if quantization == "not json":
        props = {"edgeres.quantization": "{"}
    s = onnx_summary(_model(tmp_path / "q.onnx", qdq=True, props=props))
    assert (s["precision"], s["qdq_layout"], s["num_qdq_nodes"]) == ("int8", layout, 2)
    assert f"precision    int8 (Q/DQ, 2 Q/DQ nodes, layout {layout})" in format_onnx_summary(s)


def test_an_fp16_model(tmp_path: Path) -> None:
    s = onnx_summary(_model(tmp_path / "h.onnx", fp16=True))
    assert (s["precision"], s["qdq_layout"]) == ("fp16", None)


def test_long_metadata_is_cut_to_one_line(tmp_path: Path) -> None:
    s = onnx_summary(_model(tmp_path / "m.onnx", props={"k": "a\nb " + "x" * 200}))
    (line,) = [x for x in format_onnx_summary(s) if x.startswith("  k: ")]
    assert line == "  k: a b " + "x" * 93 + "..." and len(line) == 105


def test_inspect_shows_it_in_text_and_json(run_cli, tmp_path: Path) -> None:
    model = _model(tmp_path / "q.onnx", qdq=True, props={"edgeres.quantization": '{"target": "tensorrt"}'})
    r = run_cli("inspect", str(model))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "format       onnx" in lines and "inputs       input: float [batch, 3, 8, 8]" in lines
    assert "precision    int8 (Q/DQ, 2 Q/DQ nodes, layout tensorrt)" in lines
    assert '  edgeres.quantization: {"target": "tensorrt"}' in lines
    data = json.loads(run_cli("inspect", str(model), "--json").out)
    assert data["format"] == "onnx" and data["onnx"] == onnx_summary(model)
    assert data["onnx"]["qdq_layout"] == "tensorrt"
