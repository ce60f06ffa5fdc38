"""Evaluation: top-1/top-5, per-class counts and agreement, with a classifier whose logits we know."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeres.data import ArraySource, FileListSource
from edgeres.errors import UsageError
from edgeres.evaluate import EvalResult, agreement, evaluate
from edgeres.metadata import Preprocessing
from edgeres.runners import OnnxRuntimeRunner

CLASSES = ("a", "b", "c", "d", "e", "f", "g")
PRE = Preprocessing(input_size=(8, 8), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((len(CLASSES), 3)).astype(np.float32)
    return w, rng.standard_normal(len(CLASSES)).astype(np.float32)


def linear_classifier(path: Path, seed: int) -> Path:
    """logits = W @ (mean pixel per channel) + b, as an ONNX model."""
    w, b = _weights(seed)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(CLASSES)])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def reference_logits(images: np.ndarray, seed: int) -> np.ndarray:
    w, b = _weights(seed)
    means = (images.astype(np.float64) / 255.0).mean(axis=(1, 2))  # (N, 3)
    return means @ w.T.astype(np.float64) + b


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (23, 8, 8, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("eval")
    return {seed: linear_classifier(root / f"m{seed}.onnx", seed) for seed in (1, 2)}


def test_accuracy_matches_known_logits(images: np.ndarray, models: dict[int, Path]) -> None:
    order = np.argsort(-reference_logits(images, 1), axis=1)
    # labels: the right class for 10 images, the 3rd-ranked for 6 (top-5 hit), the last-ranked for 7
    rank = np.array([0] * 10 + [2] * 6 + [6] * 7)
    labels = order[np.arange(len(images)), rank]
    source = ArraySource(images, labels, CLASSES, description="test set")
    with OnnxRuntimeRunner(models[1]) as runner:
        result = evaluate(runner, source, None, PRE, batch_size=4, progress=False)
        assert runner.is_active  # left as it was found
    assert result.num_images == result.num_labelled == 23 and result.skipped == 0
    assert result.top1 == pytest.approx(10 / 23) and result.top5 == pytest.approx(16 / 23)
    np.testing.assert_array_equal(result.predictions, order[:, 0])
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.indices, np.arange(23))
    for name, (correct, total) in result.per_class.items():
        k = CLASSES.index(name)
        assert total == (labels == k).sum() > 0
        assert correct == ((labels == k) & (order[:, 0] == k)).sum()
    assert sum(t for _, t in result.per_class.values()) == 23
    d = json.loads(json.dumps(result.to_dict(include_predictions=True)))
    assert d["top1"] == result.top1 and d["predictions"] == order[:, 0].tolist()
    assert "predictions" not in result.to_dict()
    assert "top-1 43.48%" in result.summary()


def test_agreement(images: np.ndarray, models: dict[int, Path]) -> None:
    source = ArraySource(images, None, (), description="unlabelled")  # labels -1
    subset = [5, 1, 7, 3, 9, 11, 0, 2]
    results: dict[int, EvalResult] = {}
    for seed, path in models.items():
        runner = OnnxRuntimeRunner(path)
        results[seed] = evaluate(runner, source, subset, PRE, batch_size=3, progress=False)
        assert not runner.is_active
    first = results[1]
    assert first.top1 is None and first.top5 is None and first.per_class == {}
    assert first.num_images == 8 and first.num_labelled == 0 and "no labels" in first.summary()
    a = reference_logits(images[subset], 1).argmax(1)
    b = reference_logits(images[subset], 2).argmax(1)
    assert agreement(results[1], results[2]) == pytest.approx((a == b).mean())
    assert agreement(results[1], results[1]) == 1.0
    with OnnxRuntimeRunner(models[2]) as second:
        reordered = evaluate(second, source, sorted(subset), PRE, progress=False)
        other = evaluate(second, source, [0, 1, 2], PRE, progress=False)
    assert agreement(results[1], reordered) == pytest.approx((a == b).mean())
    with pytest.raises(UsageError, match="different images"):
        agreement(results[1], other)


def test_unreadable_images_are_skipped(tmp_path: Path, images: np.ndarray, models: dict[int, Path]) -> None:
    from PIL import Image

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(images[i]).save(paths[-1])
    paths[2].write_bytes(b"not an image")
    source = FileListSource(paths, [0, 1, 2, 3], CLASSES, root=tmp_path)
    with OnnxRuntimeRunner(models[1]) as runner:
        result = evaluate(runner, source, None, PRE, progress=False)
    assert result.skipped == 1 and result.num_images == 3
    np.testing.assert_array_equal(result.indices, [0, 1, 3])
    np.testing.assert_array_equal(result.predictions, reference_logits(images[[0, 1, 3]], 1).argmax(1))


def test_labels_beyond_the_model_are_refused(images: np.ndarray, models: dict[int, Path]) -> None:
    names = tuple(str(i) for i in range(10))
    source = ArraySource(images[:4], [0, 1, 9, 2], names, description="ten classes")
    with OnnxRuntimeRunner(models[1]) as runner, pytest.raises(UsageError, match="only 7 outputs"):
        evaluate(runner, source, None, PRE, progress=False)


# -- edgeres eval: labels meet the model by class name ----------------------------------------


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_cli_eval_matches_folders_to_the_model_by_name(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.data.colour_model import colour_checkpoint, colour_folder

    model = colour_checkpoint(tmp_path / "m.pt")  # classes zebra, apple, mango
    data = colour_folder(tmp_path / "data", {"apple": 2, "mango": 2, "zebra": 2})
    r = run_cli("eval", str(model), "--data", str(data), "--no-progress", "--json", str(tmp_path / "e.json"))
    assert r.code == 0, r.err
    assert "top-1 100.00%" in r.out and "no class names" not in r.err
    assert json.loads((tmp_path / "e.json").read_text())["result"]["top1"] == 1.0

    colour_folder(data, {"kiwi": 3})
    before = _tree(tmp_path)
    r = run_cli("eval", str(model), "--data", str(data), "--no-progress", "--json", str(tmp_path / "f.json"))
    assert r.code == 1 and "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'kiwi'" in lines[0]
    assert _tree(tmp_path) == before  # nothing written

    r = run_cli("eval", str(model), "--data", str(data), "--no-progress", "--ignore-unknown-classes")
    assert r.code == 0, r.err
    assert "top-1 100.00%, top-5 100.00% on 6 labelled images, 3 of classes the model lacks skipped" in r.out
    assert "skipping the images of 1 class(es) the model does not have: 'kiwi'" in r.err


def test_cli_eval_of_a_model_without_names_says_labels_follow_folder_order(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.data.colour_model import colour_checkpoint, colour_folder

    model = colour_checkpoint(tmp_path / "m.pt", ("apple", "mango", "zebra"), named=False)
    data = colour_folder(tmp_path / "data", {"apple": 2, "mango": 2, "zebra": 2})
    r = run_cli("eval", str(model), "--data", str(data), "--no-progress")
    assert r.code == 0, r.err
    assert "top-1 100.00%" in r.out
    notes = [line for line in r.err.splitlines() if "no class names" in line]
    assert len(notes) == 1 and "sorted folder order" in notes[0]
