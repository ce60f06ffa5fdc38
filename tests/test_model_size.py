"""Model sizes count what is stored: the file and an ONNX model's external-data files, once each."""

from __future__ import annotations

from pathlib import Path

import onnx

from edgeres.model_size import stored_bytes
from tests.tiny_onnx import tiny_classifier


def test_an_inline_model_is_its_file(tmp_path: Path) -> None:
    path = tiny_classifier(tmp_path / "m.onnx")
    assert stored_bytes(path) == path.stat().st_size
    assert stored_bytes(tmp_path / "missing.onnx") is None
    other = tmp_path / "m.engine"
    other.write_bytes(b"x" * 100)
    assert stored_bytes(other) == 100


def test_external_data_is_counted_once(tmp_path: Path) -> None:
    model = onnx.load(str(tiny_classifier(tmp_path / "inline.onnx")))
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="m.weights", size_threshold=0)
    weights = tmp_path / "m.weights"
    assert weights.stat().st_size >= 3 * 8 * 8 * 4 * 4  # the float32 weights left the .onnx file
    assert stored_bytes(path) == path.stat().st_size + weights.stat().st_size


def test_a_location_outside_the_models_folder_is_not_counted(tmp_path: Path) -> None:
    model = onnx.load(str(tiny_classifier(tmp_path / "inline.onnx")))
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    loaded = onnx.load(str(path), load_external_data=False)
    for t in loaded.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../inline.onnx"
    onnx.save_model(loaded, str(path))
    assert stored_bytes(path) == path.stat().st_size
