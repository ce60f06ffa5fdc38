"""Engine build options: batch profiles, workspace sizes, validation, default paths, profile vs model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.engine.options import (
    BatchProfile,
    EngineOptions,
    check_profile_fits,
    parse_batch_profile,
    parse_workspace,
)
from edgeres.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1:1:1", (1, 1, 1)), ("1:8:32", (1, 8, 32)), (" 2 : 4 : 4 ", (2, 4, 4)), ("16", (16, 16, 16))],
)
def test_parse_batch_profile(text: str, expected: tuple[int, int, int]) -> None:
    profile = parse_batch_profile(text)
    assert (profile.min, profile.opt, profile.max) == expected
    assert parse_batch_profile(str(profile)) == profile


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1:8", "MIN:OPT:MAX"),
        ("a:b:c", "MIN:OPT:MAX"),
        ("1:2:3:4", "MIN:OPT:MAX"),
        ("", "MIN:OPT:MAX"),
        ("1.5:2:3", "MIN:OPT:MAX"),
        ("0:1:1", "positive"),
        ("-1", "positive"),
        ("8:4:16", "MIN <= OPT <= MAX"),
        ("1:32:16", "MIN <= OPT <= MAX"),
    ],
)
def test_bad_batch_profiles(text: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parse_batch_profile(text)


def test_profile_helpers() -> None:
    p = BatchProfile(1, 8, 32)
    assert str(p) == "1:8:32" and not p.is_fixed and p.allows(1) and p.allows(32) and not p.allows(33)
    assert p.shapes((3, 32, 32)) == ((1, 3, 32, 32), (8, 3, 32, 32), (32, 3, 32, 32))
    assert BatchProfile().is_fixed and str(BatchProfile()) == "1:1:1"
    with pytest.raises(UsageError):
        BatchProfile(True, 1, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512", 512 << 20), ("512M", 512 << 20), ("512MiB", 512 << 20), ("2G", 2 << 30), ("2gb", 2 << 30),
     ("1.5G", 3 << 29), ("4096K", 4 << 20), (1024, 1 << 30)],
)  # fmt: skip
def test_parse_workspace(text: str | int, expected: int) -> None:
    assert parse_workspace(text) == expected


@pytest.mark.parametrize("text", ["", "big", "2X", "-1G", "512K", "0"])
def test_bad_workspace(text: str) -> None:
    with pytest.raises(UsageError, match="workspace"):
        parse_workspace(text)


def test_options_from_strings_and_paths(tmp_path: Path) -> None:
    opts = EngineOptions.from_strings(
        fp16=True, batch="1:4:8", workspace="1G", timing_cache=tmp_path / "trt.cache", dla_core=0,
        builder_optimization_level=5, input_size="32",
    )  # fmt: skip
    assert opts.batch == BatchProfile(1, 4, 8) and opts.workspace == 1 << 30 and opts.input_size == (32, 32)
    assert opts.engine_path(tmp_path / "r20.onnx") == tmp_path / "r20.fp16.engine"
    assert EngineOptions().engine_path(tmp_path / "r20.int8.onnx") == tmp_path / "r20.int8.engine"
    assert opts.engine_path(tmp_path / "r20.fp32.onnx") == tmp_path / "r20.fp16.engine"  # not r20.fp32.fp16
    assert EngineOptions().engine_path(tmp_path / "r20.fp32.onnx") == tmp_path / "r20.fp32.engine"
    assert EngineOptions().engine_path(tmp_path / "model") == tmp_path / "model.engine"
    assert EngineOptions(output=tmp_path / "x.plan").engine_path("whatever.onnx") == tmp_path / "x.plan"
    d = opts.to_dict()
    assert d["batch"] == "1:4:8" and d["workspace_bytes"] == 1 << 30 and d["fp16"] is True
    assert d["timing_cache"] == str(tmp_path / "trt.cache") and d["builder_optimization_level"] == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"builder_optimization_level": 6}, "0..5"),
        ({"builder_optimization_level": -1}, "0..5"),
        ({"dla_core": -1}, "DLA core"),
        ({"workspace": 1000}, "1 MiB"),
    ],
)
def test_bad_options(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        EngineOptions(**kwargs)  # type: ignore[arg-type]


def test_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="folder"):
        EngineOptions(output=tmp_path)
    with pytest.raises(UsageError, match="folder"):
        EngineOptions(timing_cache=tmp_path)


def _classifier(path: Path, batch: int | str, hw: tuple[int | str, int | str] = (8, 8)) -> Path:
    weights = numpy_helper.from_array(np.full((4, 3), 0.1, np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "W"], ["logits"], transB=1),
        ],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, *hw])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])],
        [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_profile_fits_dynamic_and_fixed_models(tmp_path: Path) -> None:
    dynamic = _classifier(tmp_path / "dyn.onnx", "N")
    spec = check_profile_fits(dynamic, BatchProfile(1, 8, 64))
    assert (spec.name, spec.chw, spec.fixed_batch) == ("input", (3, 8, 8), None)
    fixed = _classifier(tmp_path / "fixed.onnx", 4)
    assert check_profile_fits(fixed, BatchProfile(4, 4, 4)).fixed_batch == 4
    with pytest.raises(UsageError, match=r"fixed batch of 4.*--batch 4:4:4"):
        check_profile_fits(fixed, BatchProfile(1, 4, 4))
    with pytest.raises(UsageError, match="fixed batch of 4"):
        check_profile_fits(fixed, BatchProfile())
    with pytest.raises(UsageError, match="takes 8x8 inputs"):
        check_profile_fits(dynamic, BatchProfile(), input_size=(16, 16))


def test_dynamic_image_size_comes_from_input_size(tmp_path: Path) -> None:
    model = _classifier(tmp_path / "hw.onnx", "N", ("H", "W"))
    with pytest.raises(UsageError, match="--input-size"):
        check_profile_fits(model, BatchProfile())
    assert check_profile_fits(model, BatchProfile(), input_size=(24, 24)).chw == (3, 24, 24)
    with pytest.raises(UsageError, match="does not exist"):
        check_profile_fits(tmp_path / "missing.onnx", BatchProfile())


def test_check_profile_shapes_passes_good_shapes() -> None:
    from edgeres.engine.options import check_profile_shapes

    shapes = ((1, 3, 32, 32), (8, 3, 32, 32), (32, 3, 32, 32))
    assert check_profile_shapes("input", shapes) == shapes
    assert check_profile_shapes("input", BatchProfile(2, 2, 2).shapes((1, 28, 28))) == ((2, 1, 28, 28),) * 3


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (
            ((1, 3, 32, 32), (8, 3, 32), (8, 3, 32, 32)),
            "the profile shapes of input x have different ranks: (1, 3, 32, 32), (8, 3, 32), (8, 3, 32, 32)",
        ),
        (
            ((1, 3, 0, 32), (1, 3, 0, 32), (1, 3, 0, 32)),
            "the profile shapes of input x need every dimension >= 1: "
            "(1, 3, 0, 32), (1, 3, 0, 32), (1, 3, 0, 32)",
        ),
        (
            ((1, 3, -1, 32), (1, 3, 32, 32), (1, 3, 32, 32)),
            "the profile shapes of input x need every dimension >= 1: "
            "(1, 3, -1, 32), (1, 3, 32, 32), (1, 3, 32, 32)",
        ),
        (
            ((1, 3, 32, 32), (8, 3, 32, 32), (4, 3, 32, 32)),
            "the profile of input x needs MIN <= OPT <= MAX in dimension 0, got 1, 8, 4",
        ),
        (
            ((1, 3, 64, 32), (1, 3, 32, 32), (1, 3, 32, 32)),
            "the profile of input x needs MIN <= OPT <= MAX in dimension 2, got 64, 32, 32",
        ),
    ],
)
def test_check_profile_shapes_refuses_in_one_line(shapes: tuple[tuple[int, ...], ...], message: str) -> None:
    from edgeres.engine.options import check_profile_shapes

    with pytest.raises(UsageError) as info:
        check_profile_shapes("x", shapes)  # type: ignore[arg-type]
    assert str(info.value) == message and info.value.exit_code == 2
