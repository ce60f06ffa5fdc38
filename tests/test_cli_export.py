"""`edgeres export` end to end: a checkpoint in, a verified ONNX with metadata out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgeres import load_model


def test_export_writes_a_verified_onnx_that_needs_no_flags_later(
    run_cli, resnet20_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r20.onnx"
    r = run_cli("export", str(resnet20_checkpoint), "-o", str(out))
    assert r.code == 0, r.err
    assert "verified random" in r.out and "top-1 agreement 100.0%" in r.out
    proto = onnx.load(out)
    assert proto.opset_import[0].version >= 17
    assert not [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    loaded = load_model(out)  # the metadata travelled: no flags needed
    assert loaded.is_onnx and loaded.meta.arch == "resnet20" and loaded.meta.class_names[3] == "cat"
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = load_model(resnet20_checkpoint).require_module()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], expected, atol=1e-4)


def test_export_verifies_on_real_images(run_cli, resnet20_checkpoint: Path, tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.jpg")
    out = tmp_path / "r.onnx"
    r = run_cli("export", str(resnet20_checkpoint), "-o", str(out), "--verify-data", str(tmp_path / "imgs"))
    assert r.code == 0, r.err
    assert "verified real (6)" in r.out


def test_export_of_an_onnx_file_is_refused(run_cli, resnet20_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.onnx"
    assert run_cli("export", str(resnet20_checkpoint), "-o", str(out)).code == 0
    again = run_cli("export", str(out), "-o", str(tmp_path / "again.onnx"))
    assert again.code == 2 and "ONNX model" in again.err
    assert not (tmp_path / "again.onnx").exists()


def test_export_into_a_missing_folder_leaves_nothing(
    run_cli, resnet20_checkpoint: Path, tmp_path: Path
) -> None:
    r = run_cli("export", str(resnet20_checkpoint), "-o", str(tmp_path / "no" / "r.onnx"))
    assert r.code == 1 and r.err.startswith("error:") and "does not exist" in r.err
    assert list(tmp_path.iterdir()) == []
