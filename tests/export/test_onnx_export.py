"""ONNX export end to end: opset, dynamic batch, folded BatchNorm, metadata, agreement, failures.

Observed with torch 2.13 + onnxscript 0.7 (what these tests pin down): the dynamo
exporter builds opset 18 and cannot convert ResNets down to 17 — "No Adapter To
Version $17 for Pad" for the CIFAR option-A shortcut, a ReduceMean axes adapter
failure (global average pooling) for option B and resnet18 — and silently keeps
opset 18. export_onnx treats that as a dynamo failure; so "auto" tries the
TorchScript exporter first below opset 18 (dynamo as the fallback) and the dynamo
exporter first from opset 18 on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeres.errors import EdgeresError, UsageError
from edgeres.export import onnx_export
from edgeres.export.fold import randomize_batchnorm
from edgeres.export.onnx_export import ExportResult, export_onnx, exporter_order
from edgeres.export.onnx_meta import read_onnx_meta
from edgeres.export.verify import compare_logits
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, ModelMeta, Preprocessing
from edgeres.models import get_model
from edgeres.runners.onnxruntime_runner import OnnxRuntimeRunner

CIFAR_NAMES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

Exported = tuple[nn.Module, ModelMeta, ExportResult]


def _export(tmp: Path, arch: str, size: int, **kwargs: Any) -> Exported:
    options = {k: kwargs.pop(k) for k in ("shortcut",) if k in kwargs}
    torch.manual_seed(0)
    model = get_model(arch, num_classes=10, **options)
    randomize_batchnorm(model)
    model.train()  # export must not depend on, or change, the caller's mode
    cifar = size == 32
    meta = ModelMeta(
        arch=arch,
        num_classes=10,
        class_names=CIFAR_NAMES,
        arch_options=options,
        preprocessing=Preprocessing(
            input_size=(size, size),
            mean=CIFAR10_MEAN if cifar else (0.485, 0.456, 0.406),
            std=CIFAR10_STD if cifar else (0.229, 0.224, 0.225),
        ),
    )
    result = export_onnx(model, meta, tmp / f"{arch}.onnx", **kwargs)
    assert model.training
    return model, meta, result


@pytest.fixture(scope="module")
def resnet20_a(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    real = np.random.default_rng(1).uniform(-2, 2, (6, 3, 32, 32)).astype(np.float32)
    return _export(tmp_path_factory.mktemp("a"), "resnet20", 32, shortcut="A", real_inputs=real)


@pytest.fixture(scope="module")
def resnet20_b(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(tmp_path_factory.mktemp("b"), "resnet20", 32, shortcut="B")


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(tmp_path_factory.mktemp("r18"), "resnet18", 64)


@pytest.mark.parametrize(
    ("arch", "size", "options", "dynamo_cause"),
    [
        ("resnet20", 32, {"shortcut": "A"}, "No Adapter To Version $17 for Pad"),
        ("resnet20", 32, {"shortcut": "B"}, "it produced opset 18, not 17"),
        ("resnet18", 64, {}, "it produced opset 18, not 17"),
    ],
)
def test_dynamo_still_fails_at_opset17(
    tmp_path: Path, arch: str, size: int, options: dict[str, str], dynamo_cause: str
) -> None:
    """Why "auto" tries TorchScript first below opset 18: when this fails, revisit exporter_order."""
    torch.manual_seed(0)
    model = get_model(arch, num_classes=10, **options)
    meta = ModelMeta(arch=arch, num_classes=10, preprocessing=Preprocessing(input_size=(size, size)))
    with pytest.raises(EdgeresError, match=re.escape(dynamo_cause)):
        export_onnx(model, meta, tmp_path / "m.onnx", exporter="dynamo")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("exporter", "opset", "order"),
    [
        ("auto", 17, ("torchscript", "dynamo")),
        ("auto", 18, ("dynamo", "torchscript")),
        ("auto", 20, ("dynamo", "torchscript")),
        ("dynamo", 17, ("dynamo",)),
        ("torchscript", 18, ("torchscript",)),
    ],
)
def test_exporter_order(exporter: str, opset: int, order: tuple[str, ...]) -> None:
    assert exporter_order(exporter, opset) == order


def test_auto_at_opset17_never_tries_dynamo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dynamo(*_args: Any) -> None:
        raise AssertionError("the dynamo exporter was tried")

    monkeypatch.setattr(onnx_export, "_export_dynamo", no_dynamo)
    result = export_onnx(_Tiny(), _TINY_META, tmp_path / "m.onnx")
    assert (result.exporter, result.opset, result.fallback_reason) == ("torchscript", 17, None)


def test_auto_falls_back_to_dynamo_when_torchscript_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise onnx_export._ExportFailed("RuntimeError: no tracer")

    monkeypatch.setattr(onnx_export, "_export_torchscript", broken)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))  # no Pad, no ReduceMean: dynamo makes 17
    result = export_onnx(flat, _TINY_META, tmp_path / "m.onnx")
    assert (result.exporter, result.opset) == ("dynamo", 17)
    assert result.fallback_reason == "RuntimeError: no tracer"


@pytest.mark.parametrize("name", ["resnet20_a", "resnet20_b", "resnet18"])
def test_export_opset17(request: pytest.FixtureRequest, name: str) -> None:
    model, meta, result = request.getfixturevalue(name)
    path = result.path
    assert result.exporter == "torchscript"
    assert result.fallback_reason is None  # TorchScript first at opset 17: no failed attempt
    assert result.opset == 17
    assert result.size_bytes == path.stat().st_size
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temp file, no external data

    proto = onnx.load(str(path))
    assert {o.domain: o.version for o in proto.opset_import}.get("", 0) >= 17
    onnx.checker.check_model(str(path), full_check=True)
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert len(proto.graph.node) == result.num_nodes
    assert all(init.data_location != onnx.TensorProto.EXTERNAL for init in proto.graph.initializer)
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert (inp.name, out.name) == ("input", "logits")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    h, w = meta.preprocessing.input_size
    assert isinstance(dims[0], str) and dims[1:] == [3, h, w]

    assert read_onnx_meta(path) == meta
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["edgeres.arch"] == meta.arch and props["edgeres.input_size"] == f"{h}x{w}"
    for key in ("edgeres.class_names", "edgeres.mean", "edgeres.std", "edgeres.version"):
        assert props[key]

    assert result.verification is not None and result.verification.ok
    assert result.verification.random.top1_agreement == 1.0
    assert result.verification.max_abs_diff < 1e-4

    model.eval()
    with OnnxRuntimeRunner(path) as runner:
        assert runner.input_shape == (None, 3, h, w)
        for batch in (1, 5):
            x = np.random.default_rng(batch).standard_normal((batch, 3, h, w), dtype=np.float32)
            with torch.no_grad():
                expected = model(torch.from_numpy(x)).numpy()
            got = runner.infer(x)
            assert got.shape == (batch, 10)
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_real_inputs_are_verified(resnet20_a: Exported) -> None:
    verification = resnet20_a[2].verification
    assert verification is not None and verification.real is not None
    assert verification.real.count == 6 and verification.real.ok
    assert "real (6)" in verification.summary()


def test_dynamo_used_at_opset18(tmp_path: Path) -> None:
    _, _, result = _export(tmp_path, "resnet20", 32, shortcut="A", opset=18)
    assert (result.exporter, result.opset, result.fallback_reason) == ("dynamo", 18, None)
    proto = onnx.load(str(result.path))
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert result.verification is not None and result.verification.ok


class _Tiny(nn.Module):
    """Conv, BN, option-A style zero-padding and global pooling: the ops that trip dynamo at opset 17."""

    def __init__(self, mode: str = "ok") -> None:
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "boom":
            raise RuntimeError("boom\nmore detail")
        y = F.pad(self.bn(self.conv(x))[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
        logits: torch.Tensor = self.fc(y.mean((2, 3)))
        if self.mode == "cheat" and (torch.jit.is_tracing() or torch.compiler.is_exporting()):
            logits = logits + 1  # the exported graph differs from eager PyTorch
        return logits


_TINY_META = ModelMeta(arch=None, num_classes=3, preprocessing=Preprocessing(input_size=(8, 8)))


def _one_line_error(exc_info: pytest.ExceptionInfo[EdgeresError]) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def test_forced_dynamo_at_opset17_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(EdgeresError) as info:
        export_onnx(_Tiny(), _TINY_META, tmp_path / "m.onnx", exporter="dynamo")
    assert "No Adapter To Version $17 for Pad" in _one_line_error(info)
    assert os.listdir(tmp_path) == []


def test_both_exporters_failing_reports_both(tmp_path: Path) -> None:
    with pytest.raises(EdgeresError) as info:
        export_onnx(_Tiny("boom"), _TINY_META, tmp_path / "m.onnx", fold_bn=False)
    text = _one_line_error(info)
    assert "dynamo: RuntimeError: boom" in text and "TorchScript: RuntimeError: boom" in text
    assert os.listdir(tmp_path) == []


def test_mismatch_fails_and_keeps_old_file(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    with pytest.raises(EdgeresError) as info:
        export_onnx(_Tiny("cheat"), _TINY_META, out, fold_bn=False, exporter="torchscript")
    assert "does not match PyTorch" in _one_line_error(info)
    assert os.listdir(tmp_path) == ["m.onnx"] and out.read_bytes() == b"old"


def test_fixed_batch_export_replaces_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    result = export_onnx(_Tiny(), _TINY_META, out, dynamic_batch=False, exporter="torchscript")
    assert os.listdir(tmp_path) == ["m.onnx"]
    with OnnxRuntimeRunner(result.path) as runner:
        assert runner.input_shape == (1, 3, 8, 8)
    assert result.verification is not None and result.verification.ok  # verified one image at a time


def test_missing_or_bad_output_folder(tmp_path: Path) -> None:
    with pytest.raises(EdgeresError, match="does not exist") as info:
        export_onnx(_Tiny(), _TINY_META, tmp_path / "nope" / "m.onnx")
    _one_line_error(info)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EdgeresError):
        export_onnx(_Tiny(), _TINY_META, blocker / "m.onnx")
    with pytest.raises(UsageError, match="is a folder"):
        export_onnx(_Tiny(), _TINY_META, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_output_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(EdgeresError, match="not writable"):
            export_onnx(_Tiny(), _TINY_META, folder / "m.onnx")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"opset": 16}, "opset must be"), ({"exporter": "x"}, "exporter")]
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        export_onnx(_Tiny(), _TINY_META, tmp_path / "m.onnx", **kwargs)


def test_compare_logits_rules() -> None:
    expected = np.array([[10.0, 1.0, 0.0], [0.5, 0.49995, 0.0]], dtype=np.float32)
    close = expected + np.float32(5e-3)  # within 1e-3 × max|logit| = 1e-2
    check = compare_logits("random", expected, close, atol=1e-3)
    assert check.ok and check.tolerance == pytest.approx(1e-2)
    flipped = expected.copy()
    flipped[1, 1] += 1e-4  # a near-tie flips: reported, still ok
    check = compare_logits("random", expected, flipped, atol=1e-3)
    assert check.ok and check.top1_agreement == 0.5
    assert not compare_logits("random", expected, expected + 0.02, atol=1e-3).ok
    assert not compare_logits("random", expected, expected * np.nan, atol=1e-3).ok
