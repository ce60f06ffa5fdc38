"""Helpers shared by the engine and TensorRT runner tests: small real models to convert and build."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def export_resnet20(path: Path) -> Path:
    """A random-weight resnet20 (random BatchNorm statistics too) exported with CIFAR-10 metadata."""
    import torch

    from edgeres.export.fold import randomize_batchnorm
    from edgeres.export.onnx_export import export_onnx
    from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, ModelMeta, Preprocessing
    from edgeres.models import get_model
    from tests.conftest import CIFAR10_CLASSES

    torch.manual_seed(0)
    net = get_model("resnet20", num_classes=10)
    randomize_batchnorm(net)
    pre = Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    meta = ModelMeta(arch="resnet20", num_classes=10, class_names=CIFAR10_CLASSES, preprocessing=pre)
    return export_onnx(net.eval(), meta, path, exporter="torchscript", verify=False).path


def quantize_qdq(fp32: Path, out: Path) -> Path:
    """An INT8 Q/DQ model in TensorRT's style: symmetric int8, per-channel weights, float biases."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"input": rng.standard_normal((8, 3, 32, 32), dtype=np.float32)}] * 2)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(
        str(fp32),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    )
    return out


def random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32), dtype=np.float32)


def run_onnxruntime(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x})[0])


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())
