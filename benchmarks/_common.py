"""Shared by the benchmark scripts (run as `python benchmarks/NAME.py`, so this folder is on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Default input size of the models the latency and calibration benchmarks use.
SIZES = {"resnet18": 224, "resnet34": 224, "resnet50": 224, "resnet101": 224, "resnet20": 32, "resnet56": 32}


def export_random(name: str, folder: Path) -> Path:
    """Export ``name`` with fixed random weights and BatchNorm statistics: latency needs no training."""
    import torch

    from edgeres.export.fold import randomize_batchnorm
    from edgeres.export.onnx_export import export_onnx
    from edgeres.metadata import ModelMeta, Preprocessing
    from edgeres.models import get_model

    torch.manual_seed(0)
    size = SIZES[name]
    classes = 10 if size == 32 else 1000
    net = get_model(name, num_classes=classes)
    randomize_batchnorm(net)
    meta = ModelMeta(arch=name, num_classes=classes, preprocessing=Preprocessing(input_size=(size, size)))
    return export_onnx(net.eval(), meta, folder / f"{name}.onnx", exporter="torchscript", verify=False).path


def vm_kb(field: str) -> int:
    """A field of this process's /proc/self/status in kB (VmRSS now, VmHWM its peak); 0 off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class HeldOut:
    """A trained checkpoint's calibration images and the images its training held out."""

    meta: Any  # edgeres.metadata.ModelMeta
    split: Any  # edgeres.data.holdout.TrainingSplit
    chosen: Any  # edgeres.quantize.selection's choice: calib_* and eval_indices
    source: Any
    classes: Any

    def run(self, runner: Any) -> Any:
        """``runner``'s EvalResult on the held-out images."""
        from edgeres.evaluate import evaluate

        return evaluate(
            runner, self.source, self.chosen.eval_indices, self.meta.preprocessing,
            progress=False, classes=self.classes,
        )  # fmt: skip


def held_out(checkpoint: Path, data: str, calib_size: int, eval_size: int | None = None) -> HeldOut:
    """What ``edgeres quantize`` would calibrate on and evaluate on for ``checkpoint`` trained on ``data``."""
    from edgeres.data import align_labels, open_source
    from edgeres.data.holdout import TrainingSplit
    from edgeres.loading import load_model
    from edgeres.quantize.selection import select_images

    loaded = load_model(checkpoint)
    split = TrainingSplit.from_checkpoint(loaded.extra)
    chosen = select_images(data, data, calib_size=calib_size, eval_size=eval_size, split=split)
    assert chosen.eval_indices is not None
    source = open_source(data)
    classes = align_labels(source, loaded.meta.class_names, loaded.meta.num_classes)
    return HeldOut(loaded.meta, split, chosen, source, classes)
