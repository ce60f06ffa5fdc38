"""quantize() end to end on a small real model and data: files, cache reuse, held-out images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeres.data.holdout import TrainingSplit
from edgeres.errors import EdgeresError, UsageError
from edgeres.quantize.selection import select_images
from edgeres.quantize.workflow import QuantizeOptions, output_paths, quantize, resolve_targets

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """300 random 32x32 images in 10 labelled classes, each class a different mean colour."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    base = rng.integers(0, 255, (10, 1, 1, 3))
    images = np.clip(base[labels] + rng.normal(0, 40, (300, 32, 32, 3)), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    np.savez(path, images=images, labels=labels, class_names=np.array(CLASSES))
    return str(path)


def _predictions(model: Path, target: str, npz: str, indices: np.ndarray) -> np.ndarray:
    """Top-1 class of each image, run here with ONNX Runtime, not through edgeres.evaluate."""
    from edgeres.data.preprocess import preprocess_array
    from edgeres.export.onnx_meta import read_onnx_meta
    from edgeres.quantize.workflow import faithful_to
    from edgeres.runners import OnnxRuntimeRunner

    meta = read_onnx_meta(model)
    batch = preprocess_array(np.load(npz)["images"][indices], meta.preprocessing)
    with OnnxRuntimeRunner(model, disabled_optimizers=faithful_to(target)) as runner:
        return np.argmax(runner.infer(batch), axis=1)


def test_selection_never_reuses_held_out_images(npz_data: str) -> None:
    s = select_images(npz_data, npz_data, calib_size=100, seed=0, tune=True)
    assert s.eval_indices is not None
    calib, tune, held = set(s.calib_indices), set(s.tune_indices), set(s.eval_indices)
    assert len(calib) == 100 and tune and held
    assert not calib & held and not tune & held and not calib & tune
    assert "held out" in s.note


def test_selection_reuses_the_training_split(npz_data: str) -> None:
    val = np.arange(0, 300, 10)
    extra = {"train": {"settings": {"data": npz_data}, "split": {"val_indices": val.tolist()}}}
    s = select_images(npz_data, npz_data, calib_size=50, seed=0, split=TrainingSplit.from_checkpoint(extra))
    assert s.eval_indices is not None
    assert sorted(s.eval_indices.tolist()) == val.tolist()
    assert not set(s.calib_indices) & set(val.tolist())
    assert "edgeres train" in s.note


def test_targets_and_output_names() -> None:
    assert resolve_targets("all") == ("cpu", "tensorrt", "openvino")
    assert resolve_targets("auto") in (("cpu",), ("tensorrt",))
    paths = output_paths(Path("m.pt"), Path("out/q.onnx"), ("cpu", "tensorrt"))
    assert paths == {"cpu": Path("out/q.cpu.onnx"), "tensorrt": Path("out/q.tensorrt.onnx")}
    assert output_paths(Path("d/m.pt"), None, ("cpu",)) == {"cpu": Path("d/m.int8.cpu.onnx")}
    assert output_paths(Path("d/m.fp32.onnx"), None, ("tensorrt",)) == {
        "tensorrt": Path("d/m.int8.tensorrt.onnx")
    }
    assert output_paths(Path("d/m.pt"), Path("q.onnx"), ("cpu",)) == {"cpu": Path("q.onnx")}


def test_quantize_writes_every_target_and_reuses_its_cache(
    resnet20_checkpoint: Path, npz_data: str, tmp_path: Path
) -> None:
    opts = QuantizeOptions(calib=npz_data, target="all", calib_size=64, eval_data=npz_data, progress=False)
    report = quantize(resnet20_checkpoint, tmp_path / "q.onnx", opts)
    assert [t.target for t in report.targets] == ["cpu", "tensorrt", "openvino"]
    assert report.fp32_onnx == tmp_path / "resnet20.fp32.onnx" and report.fp32_onnx.exists()
    assert report.cache == tmp_path / "q.calib.json" and report.calib_images == 64
    assert report.eval_images == 30  # 10% held out of 300
    # Agreement and top-1 recomputed here from each model's own predictions on the held-out images.
    held = select_images(npz_data, npz_data, calib_size=64).eval_indices
    assert held is not None and len(held) == 30
    labels = np.load(npz_data)["labels"]
    fp32_predictions = _predictions(report.fp32_onnx, "fp32", npz_data, held)
    assert report.fp32_top1 == pytest.approx(float(np.mean(fp32_predictions == labels[held])), abs=1e-12)
    assert len(set(fp32_predictions.tolist())) > 1  # a model that answers one class proves nothing
    for t in report.targets:
        assert t.path.exists() and t.num_quantized_nodes > 0
        predictions = _predictions(t.path, t.target, npz_data, held)
        assert t.agreement == pytest.approx(float(np.mean(predictions == fp32_predictions)), abs=1e-12)
        assert t.top1 == pytest.approx(float(np.mean(predictions == labels[held])), abs=1e-12)
        props = {p.key: p.value for p in onnx.load(str(t.path)).metadata_props}
        assert json.loads(props["edgeres.meta"])["arch"] == "resnet20"
        assert json.loads(props["edgeres.quantization"])["method"] == "percentile"
    cached = json.loads(report.cache.read_text())
    again = quantize(
        resnet20_checkpoint,
        tmp_path / "again.onnx",
        QuantizeOptions(target="cpu", calib_cache=report.cache, progress=False),
    )
    assert again.reused_cache and again.method == "percentile"
    a = onnx.load(str(report.targets[0].path)).graph.initializer
    b = onnx.load(str(again.targets[0].path)).graph.initializer
    assert {i.name: onnx.numpy_helper.to_array(i).tobytes() for i in a} == {
        i.name: onnx.numpy_helper.to_array(i).tobytes() for i in b
    }
    assert json.loads(report.cache.read_text()) == cached


def test_cache_of_another_model_is_refused(resnet20_checkpoint: Path, npz_data: str, tmp_path: Path) -> None:
    from edgeres.checkpoint import create_checkpoint

    opts = QuantizeOptions(calib=npz_data, target="cpu", calib_size=32, progress=False)
    report = quantize(resnet20_checkpoint, tmp_path / "q.onnx", opts)
    other = create_checkpoint("resnet20", tmp_path / "other.pt", seed=1)
    with pytest.raises(UsageError, match="another model"):
        quantize(other, tmp_path / "o.onnx", QuantizeOptions(calib_cache=report.cache, target="cpu"))


def test_method_auto_scores_every_method_and_keeps_the_best(fragile_model, tmp_path: Path) -> None:
    """End to end through quantize(), on a model whose INT8 predictions differ by method."""
    m = fragile_model
    opts = QuantizeOptions(
        calib=m.data, eval_data=m.data, target="tensorrt", calib_size=64, auto_method=True, progress=False
    )
    report = quantize(m.fp32, tmp_path / "q.onnx", opts)
    assert set(report.method_scores) == {"minmax", "percentile", "entropy", "mse"}
    assert len(set(report.method_scores.values())) > 1  # a choice that matters
    assert report.method_scores[report.method] == max(report.method_scores.values())
    props = {p.key: p.value for p in onnx.load(str(report.targets[0].path)).metadata_props}
    assert json.loads(props["edgeres.quantization"])["method"] == report.method  # the model is the chosen one


def test_bad_requests(resnet20_checkpoint: Path, npz_data: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--calib"):
        QuantizeOptions()
    with pytest.raises(UsageError, match="--max-drop"):
        QuantizeOptions(calib=npz_data, max_drop=0.5)
    with pytest.raises(UsageError, match="does not exist"):
        quantize(resnet20_checkpoint, tmp_path / "missing" / "q.onnx", QuantizeOptions(calib=npz_data))


def test_max_drop_keeps_the_sensitive_layer_in_float(fragile_model, tmp_path: Path) -> None:
    """End to end: the drop does not fit in all-INT8, every weighted layer is ranked, the fragile one kept."""
    from edgeres.quantize.tuning import weighted_nodes

    m = fragile_model
    opts = QuantizeOptions(
        calib=m.data, eval_data=m.data, target="tensorrt", calib_size=64, max_drop=15.0, progress=False
    )
    report = quantize(m.fp32, tmp_path / "q.onnx", opts)
    (target,) = report.targets
    assert target.excluded_nodes == (m.fragile,)
    assert set(target.sensitivity) == set(weighted_nodes(report.fp32_onnx))
    assert all(-1.0 <= g <= 1.0 for g in target.sensitivity.values())
    assert report.to_dict()["targets"][0]["sensitivity"] == target.sensitivity
    assert target.drop is not None and target.drop <= 15.0
    graph = onnx.load(str(target.path)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    by_name = {n.name: n for n in graph.node}
    assert by_name[m.fragile].input[1] not in dequantized  # kept in float: weights from an initializer
    quantized = [n for n in graph.node if n.op_type == "Conv" and n.input[1] in dequantized]
    assert len(quantized) == 19 - 1


def test_evaluating_on_other_classes_is_refused(resnet20_checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "other.npz"
    names = np.array([f"c{i}" for i in range(10)])
    np.savez(
        path,
        images=rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8),
        labels=np.arange(40) % 10,
        class_names=names,
    )
    with pytest.raises(EdgeresError, match="10 class\\(es\\) the model does not have: 'c0', 'c1'"):
        quantize(
            resnet20_checkpoint, tmp_path / "q.onnx", QuantizeOptions(calib=str(path), eval_data=str(path))
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.npz"]  # nothing written


def test_evaluation_matches_the_data_classes_to_the_model_by_name(tmp_path: Path) -> None:
    """The model's classes are zebra, apple, mango: sorted folder order would score 0%."""
    from tests.data.colour_model import colour_checkpoint, colour_folder

    model = colour_checkpoint(tmp_path / "m.pt")
    data = str(colour_folder(tmp_path / "data", {"apple": 10, "mango": 10, "zebra": 10}))
    report = quantize(model, tmp_path / "q.onnx", QuantizeOptions(calib=data, eval_data=data, progress=False))
    assert report.fp32_top1 == 1.0 and report.eval_images == 3


def test_tensorrt_layout_is_evaluated_with_excluded_convs_kept_float(
    resnet20_checkpoint: Path, npz_data: str, tmp_path: Path
) -> None:
    """ORT's CPU optimizer would quantize a float conv between Q/DQ pairs; TensorRT would not."""
    from edgeres.quantize.qdq import conv_kernels, count_int8_kernels, write_qdq
    from edgeres.quantize.tuning import weighted_nodes
    from edgeres.quantize.workflow import faithful_to

    report = quantize(
        resnet20_checkpoint,
        tmp_path / "q.onnx",
        QuantizeOptions(calib=npz_data, target="cpu", progress=False),
    )
    from edgeres.quantize.cache import load_cache

    ranges, _ = load_cache(report.cache)
    middle = weighted_nodes(report.fp32_onnx)[10]  # reads a DequantizeLinear, feeds a QuantizeLinear
    path = write_qdq(report.fp32_onnx, ranges, "cpu", tmp_path / "x.onnx", exclude_nodes=(middle,)).path
    faithful_int8, faithful_float = conv_kernels(
        count_int8_kernels(path, disabled_optimizers=faithful_to("tensorrt"))
    )
    assert (faithful_int8, faithful_float) == (19, 1)
    assert faithful_to("cpu") == ()
