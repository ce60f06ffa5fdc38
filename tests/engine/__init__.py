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
    """edgeres's own INT8 Q/DQ model for TensorRT (``--target tensorrt``), calibrated on random images.

    The FP16 and engine tests take the layout edgeres writes, not another quantizer's.
    """
    from edgeres.quantize.collect import collect_ranges
    from edgeres.quantize.qdq import write_qdq
    from edgeres.quantize.settings import CalibrationSettings

    class Reader:
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = [rng.standard_normal((8, 3, 32, 32), dtype=np.float32)] * 2
            self.next = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.next == len(self.batches):
                return None
            self.next += 1
            return {"input": self.batches[self.next - 1]}

        def rewind(self) -> None:
            self.next = 0

    settings = CalibrationSettings(method="minmax")
    ranges = collect_ranges(fp32, Reader(), settings, progress=False).ranges
    return write_qdq(fp32, ranges, "tensorrt", out, calibration={"method": "minmax"}).path


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
