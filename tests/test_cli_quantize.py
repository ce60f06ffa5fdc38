"""`edgeres quantize` and `edgeres eval` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> str:
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
        (root / c).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return str(root)


def test_quantize_prints_the_table_and_writes_json(
    run_cli, resnet20_checkpoint: Path, images: str, tmp_path
) -> None:
    out = tmp_path / "r20.int8.onnx"
    report = tmp_path / "report.json"
    r = run_cli(
        "quantize", str(resnet20_checkpoint), "--calib", images, "--eval", images, "-o", str(out),
        "--target", "cpu", "--calib-size", "32", "--json", str(report), "--no-progress",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "calibration: percentile on 32 images" in r.out
    assert "INT8 cpu" in r.out and "agree" in r.out
    assert "broken.jpg" in r.err  # the corrupt image is named, skipped and counted
    data = json.loads(report.read_text())
    assert data["targets"][0]["target"] == "cpu" and data["eval_images"] > 0
    from edgeres.sysinfo import int8_pairs_saturate

    # --weight-bits auto: 7-bit weights where this CPU would saturate 8-bit sums, so no caveat
    saturates = int8_pairs_saturate()
    assert data["targets"][0]["weight_bits"] == (7 if saturates else 8)
    assert ("7-bit weights (auto: this CPU has no VNNI;" in r.out) is saturates
    assert "caveat" not in r.out and data["targets"][0]["caveat"] is None
    assert out.exists() and (tmp_path / "r20.int8.calib.json").exists()


def test_eval_compares_int8_with_fp32(run_cli, resnet20_checkpoint: Path, images: str, tmp_path) -> None:
    out = tmp_path / "q.onnx"
    r = run_cli("quantize", str(resnet20_checkpoint), "--calib", images, "-o", str(out), "--target", "cpu",
                "--no-progress")  # fmt: skip
    assert r.code == 0, r.err
    fp32 = tmp_path / "resnet20.fp32.onnx"
    result = tmp_path / "eval.json"
    r = run_cli(
        "eval", str(out), "--data", images, "--compare", str(fp32), "--json", str(result), "--no-progress"
    )
    assert r.code == 0, r.err
    assert "top-1 agreement with the reference" in r.out
    assert [line for line in r.err.splitlines() if not line.startswith("warning:")] == [
        f"info: evaluating {out} on 61 images of {images} (onnxruntime on cpu)",  # one is unreadable: 60 are
        f"info: evaluating the reference {fp32} on the same 60 images (onnxruntime on cpu)",
    ]  # what starts and on what, one line each, and no progress bar
    data = json.loads(result.read_text())
    assert data["result"]["num_images"] == 60
    assert data["reference"]["agreement"] == pytest.approx(_agreement(out, fp32, images))
    assert (data["precision"], data["reference"]["precision"]) == ("int8", "fp32")
    assert data["size_bytes"] == out.stat().st_size and data["reference"]["size_bytes"] == fp32.stat().st_size
    bench = run_cli("bench", str(out), "--iters", "2", "--warmup", "1")
    assert bench.code == 0, bench.err
    assert bench.out.splitlines()[1].split()[:4] == ["q.onnx", "onnxruntime", "cpu", "int8"]
    torch_eval = run_cli("eval", str(resnet20_checkpoint), "--data", images, "--no-progress", "--json",
                         str(tmp_path / "t.json"))  # fmt: skip
    assert torch_eval.code == 0, torch_eval.err
    onnx_eval = json.loads(result.read_text())["reference"]["result"]
    assert json.loads((tmp_path / "t.json").read_text())["result"]["top1"] == pytest.approx(onnx_eval["top1"])


def test_quantize_errors_are_one_line(run_cli, resnet20_checkpoint: Path, tmp_path) -> None:
    r = run_cli("quantize", str(resnet20_checkpoint), "-o", str(tmp_path / "q.onnx"))
    assert r.code == 2 and r.err.startswith("error:") and "--calib" in r.err
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("quantize", str(resnet20_checkpoint), "--calib", str(empty), "-o", str(tmp_path / "q.onnx"))
    assert r.code != 0 and r.err.startswith("error:") and "Traceback" not in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # nothing written


def test_weight_bits(run_cli, resnet20_checkpoint: Path, images: str, tmp_path) -> None:
    """--weight-bits 7 writes the cpu layout with 7-bit weights (|q| <= 64) and says so; the
    tensorrt layout keeps 8; anything else is refused before any work."""
    import onnx
    from onnx import numpy_helper

    out = tmp_path / "q.onnx"
    r = run_cli(
        "quantize", str(resnet20_checkpoint), "--calib", images, "-o", str(out), "--target", "all",
        "--calib-size", "16", "--weight-bits", "7", "--no-progress", "--json", str(tmp_path / "q.json"),
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "(cpu layout, 7-bit weights," in r.out and "(tensorrt layout, 20 weighted" in r.out
    records = {t["target"]: t for t in json.loads((tmp_path / "q.json").read_text())["targets"]}
    assert records["cpu"]["weight_bits"] == 7 and records["tensorrt"]["weight_bits"] == 8
    graph = onnx.load(str(tmp_path / "q.cpu.onnx")).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    conv_weights = [w for w in weights if w.ndim == 4]
    assert len(conv_weights) == 19 and max(int(abs(w.astype(int)).max()) for w in conv_weights) == 64
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "q.tensorrt.onnx")).metadata_props}
    assert json.loads(props["edgeres.quantization"])["layout"]["weight_bits"] == 8
    trt = tmp_path / "t.onnx"
    r = run_cli("quantize", str(resnet20_checkpoint), "--calib-cache", str(tmp_path / "q.calib.json"),
                "--target", "tensorrt", "--weight-bits", "7", "-o", str(trt))  # fmt: skip
    assert r.code == 0, r.err
    assert "note: --weight-bits 7 is for the cpu and openvino layouts; the tensorrt layout keeps" in r.err
    r = run_cli("quantize", str(resnet20_checkpoint), "--calib", images, "--weight-bits", "6", "-o", str(out))
    assert r.code == 2 and "'6' is not one of 'auto', '8', '7'" in r.err


def _agreement(model: Path, reference: Path, images: str) -> float:
    """Top-1 agreement computed here, apart from edgeres's evaluate: both models on every readable image."""
    import onnxruntime as ort

    from edgeres.data import iter_batches, open_source
    from edgeres.loading import load_model

    source = open_source(images)
    pre = load_model(reference).meta.preprocessing
    preds = []
    for path in (model, reference):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        batches = iter_batches(source, np.arange(len(source)), pre, batch_size=16)
        preds.append(np.concatenate([session.run(None, {name: x})[0].argmax(1) for x, _ in batches]))
    assert len(preds[0]) == 60
    return float((preds[0] == preds[1]).mean())
