"""Reading metadata from ONNX files, edgeres's own and foreign ones, and rejecting non-classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.errors import EdgeresError, UsageError
from edgeres.export.onnx_meta import META_KEY, check_classifier, read_onnx_meta, write_meta_props
from edgeres.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta, Preprocessing


def _classifier(
    h: int | str = 8, w: int | str = 8, classes: int | str = 4, *, input_rank: int = 4, inputs: int = 1
) -> onnx.ModelProto:
    """GlobalAveragePool -> Flatten -> Gemm: a tiny but real classifier."""
    dims = ["N", 3, h, w][:input_rank] if input_rank <= 4 else ["N", 3, h, w, 1]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)]
    graph_inputs += [
        helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, ["N"]) for i in range(inputs - 1)
    ]
    weight = numpy_helper.from_array(np.ones((3, 4), dtype=np.float32), "w")
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["logits"]),
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])
    graph = helper.make_graph(nodes, "tiny", graph_inputs, [out], initializer=[weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_foreign_model_fixed_shapes(tmp_path: Path) -> None:
    meta = read_onnx_meta(_save(_classifier(8, 8, 4), tmp_path / "m.onnx"))
    assert meta.num_classes == 4
    assert meta.preprocessing.input_size == (8, 8)
    assert meta.preprocessing.mean == IMAGENET_MEAN
    assert meta.preprocessing.std == IMAGENET_STD
    assert meta.arch is None


def test_foreign_model_dynamic_size_needs_flag(tmp_path: Path) -> None:
    path = _save(_classifier("H", "W", 4), tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="--input-size"):
        read_onnx_meta(path)
    meta = read_onnx_meta(path, input_size=(40, 48), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert meta.preprocessing.input_size == (40, 48)
    assert meta.preprocessing.mean == (0.5, 0.5, 0.5)


def test_foreign_model_dynamic_classes(tmp_path: Path) -> None:
    path = _save(_classifier(8, 8, "C"), tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="number of classes"):
        read_onnx_meta(path)
    assert read_onnx_meta(path, class_names=["a", "b", "c", "d"]).num_classes == 4


def test_wrong_input_size_or_class_names_rejected(tmp_path: Path) -> None:
    path = _save(_classifier(8, 8, 4), tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="takes 8x8"):
        read_onnx_meta(path, input_size=(16, 16))
    with pytest.raises(UsageError, match="3 class names"):
        read_onnx_meta(path, class_names=["a", "b", "c"])


def test_stored_meta_round_trip(tmp_path: Path) -> None:
    meta = ModelMeta(
        arch="resnet20",
        num_classes=4,
        class_names=("cat", "dog", "cow", "owl"),
        preprocessing=Preprocessing(input_size=(8, 8), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6)),
    )
    model = _classifier(8, 8, 4)
    model.metadata_props.add(key="other", value="kept")
    write_meta_props(model, meta)
    write_meta_props(model, meta)  # rewriting replaces, never duplicates
    props = {p.key: p.value for p in model.metadata_props}
    assert len(model.metadata_props) == len(props)
    assert props["other"] == "kept"
    assert json.loads(props["edgeres.class_names"]) == ["cat", "dog", "cow", "owl"]
    assert props["edgeres.input_size"] == "8x8"
    assert ModelMeta.from_json(props[META_KEY]) == meta
    path = _save(model, tmp_path / "m.onnx")
    assert read_onnx_meta(path) == meta
    renamed = read_onnx_meta(path, class_names=["a", "b", "c", "d"])
    assert renamed.class_names == ("a", "b", "c", "d")
    assert renamed.preprocessing == meta.preprocessing


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inputs": 2}, "it has inputs x: float\\[N, 3, 8, 8\\], extra0: float\\[N\\]"),
        ({"input_rank": 2}, "it has inputs x: float\\[N, 3\\]"),
    ],
)
def test_non_classifier_rejected(tmp_path: Path, kwargs: dict[str, int], match: str) -> None:
    model = _classifier(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not an image classifier: " + match) as info:
        check_classifier(model, "m.onnx")
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="not an image classifier"):
        read_onnx_meta(_save(model, tmp_path / "m.onnx"))


def test_two_outputs_rejected() -> None:
    model = _classifier()
    model.graph.output.append(helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 3, 1, 1]))
    with pytest.raises(UsageError, match="it has outputs logits"):
        check_classifier(model)


def test_integer_input_rejected() -> None:
    model = _classifier()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(UsageError, match="not an image classifier"):
        check_classifier(model)


@pytest.mark.parametrize("content", [b"this is not a protobuf at all", b"\x08\x07", b""])
def test_corrupt_file_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(EdgeresError, match="ONNX") as info:
        read_onnx_meta(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_onnx_meta(tmp_path / "nope.onnx")


def _with_meta(model: onnx.ModelProto, value: str) -> onnx.ModelProto:
    model.metadata_props.add(key=META_KEY, value=value)
    return model


@pytest.mark.parametrize(
    "stored, message",
    [
        ("[1, 2]", "not a mapping"),
        ('{"num_classes": "4"}', "whole number"),
        ('{"num_classes": 4, "arch": 7}', "architecture must be a name"),
        ('{"num_classes": 4, "class_names": "abcd"}', "not a list"),
        ('{"num_classes": 4, "preprocessing": {"input_size": [[8, 8]]}}', "whole numbers"),
        ('{"num_classes": 4, "preprocessing": {"mean": [NaN, 0, 0]}}', "finite"),
        ('{"num_classes": 4, "preprocessing": {"input_size": 100000}}', "larger than edgeres accepts"),
        ('{"num_classes": 300000000}', "more than edgeres accepts"),
    ],
)
def test_malformed_or_oversized_stored_metadata(tmp_path: Path, stored: str, message: str) -> None:
    path = _save(_with_meta(_classifier(classes="K"), stored), tmp_path / "m.onnx")
    with pytest.raises(EdgeresError, match=message) as info:
        read_onnx_meta(path)
    assert "\n" not in str(info.value) and info.value.exit_code == 1  # the file is damaged


def test_huge_fixed_input_dims_are_refused(tmp_path: Path) -> None:
    path = _save(_classifier(100000, 100000), tmp_path / "huge.onnx")
    with pytest.raises(UsageError, match="100000x100000 is larger than edgeres accepts"):
        read_onnx_meta(path)
    with pytest.raises(UsageError, match="larger than edgeres accepts"):
        read_onnx_meta(_save(_classifier("H", "W"), tmp_path / "dyn.onnx"), input_size=(9000, 9000))


def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(np.ones(12, dtype=np.float32).tobytes())
    model = _classifier()
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "48")):
        weight.external_data.add(key=key, value=value)
    (tmp_path / "model").mkdir()
    path = _save(model, tmp_path / "model" / "m.onnx")
    from edgeres.export.onnx_meta import load_onnx

    with pytest.raises(EdgeresError, match="points outside the directory") as info:
        load_onnx(path, load_weights=True)
    assert "\n" not in str(info.value) and "not a valid ONNX model" in str(info.value)
