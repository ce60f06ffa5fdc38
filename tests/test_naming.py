"""One rule names every default output: the input's stem, a .fp32 tag replaced, the new tag, the layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeres.naming import derived_path


@pytest.mark.parametrize(
    ("source", "tag", "suffix", "expected"),
    [
        ("d/r20.fp32.onnx", "fp16", ".onnx", "d/r20.fp16.onnx"),
        ("d/r20.onnx", "fp16", ".onnx", "d/r20.fp16.onnx"),
        ("d/r20.fp32.onnx", "int8", ".onnx", "d/r20.int8.onnx"),
        ("d/best.pt", "int8", ".onnx", "d/best.int8.onnx"),
        ("d/r20.int8.tensorrt.onnx", "fp16", ".engine", "d/r20.int8.tensorrt.fp16.engine"),
        ("d/r20.fp32.onnx", None, ".engine", "d/r20.fp32.engine"),  # precision unchanged: the tag stays
        ("d/.fp32", "fp16", ".onnx", "d/.fp32.fp16.onnx"),  # a name that is only a tag keeps it
        ("d/fp32.onnx", "fp16", ".onnx", "d/fp32.fp16.onnx"),  # only a tag after a dot is one
    ],
)
def test_derived_path(source: str, tag: str | None, suffix: str, expected: str) -> None:
    assert derived_path(source, tag, suffix) == Path(expected)


def test_convert_fp16_follows_it(run_cli, tmp_path: Path) -> None:
    pytest.importorskip("onnxconverter_common")
    from tests.tiny_onnx import tiny_classifier

    model = tiny_classifier(tmp_path / "r20.fp32.onnx")
    r = run_cli("convert-fp16", str(model))
    assert r.code == 0, r.err
    assert r.out.strip() == f"wrote {tmp_path / 'r20.fp16.onnx'}"


FILE_OUTPUT = ("export", "calib-set", "quantize", "convert-fp16", "build-engine", "create")
FOLDER_OUTPUT = ("train", "pipeline", "report", "demo")


@pytest.mark.parametrize("command", FILE_OUTPUT + FOLDER_OUTPUT)
def test_the_help_of_o_says_file_or_folder(command: str) -> None:
    from edgeres.cli import cli

    (param,) = [p for p in cli.commands[command].params if "-o" in getattr(p, "opts", ())]
    text = (param.help or "").lower()  # type: ignore[attr-defined]
    assert ("folder" in text) == (command in FOLDER_OUTPUT) and ("file" in text) == (command in FILE_OUTPUT)
