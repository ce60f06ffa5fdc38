"""What the stages share during one run: the paths, the settings, the model variants made so far.

Also what this machine offers (TensorRT, a CUDA GPU, the float16 converter) and which
images evaluation uses, so that every stage decides these the same way.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeres.data.holdout import TrainingSplit, held_out_indices, same_data
from edgeres.errors import EdgeresError
from edgeres.pipeline.settings import PipelineConfig
from edgeres.pipeline.state import PipelineState

if TYPE_CHECKING:
    import numpy as np

    from edgeres.data import ImageSource, LabelMap
    from edgeres.report.data import ReportPaths

__all__ = [
    "FP16_NOT_TIMED",
    "Context",
    "Variant",
    "has_module",
    "onnx_fixed_batch",
    "same_data",
    "tensorrt_unavailable",
]

log = logging.getLogger(__name__)

FP32_ONNX = "model.fp32.onnx"
FP16_ONNX = "model.fp16.onnx"
TRAIN_SPLIT = "train_split.json"
FP16_NOT_TIMED = "no GPU: FP16 runs only emulated on CPU"


@dataclass(frozen=True)
class Variant:
    """One model file the pipeline made: fp32, fp16, int8-cpu, int8-tensorrt, engine-fp32, ...

    ``layout`` is the Q/DQ target of an INT8 ONNX (cpu, tensorrt or openvino), so that ONNX Runtime
    runs it as that target would. ``backend`` is the runtime when it is not the file's own
    (ONNX Runtime for ONNX, TensorRT for engines): ``openvino`` for the OpenVINO variants of
    :mod:`edgeres.pipeline.openvino`.
    """

    name: str
    path: Path
    precision: str
    layout: str | None = None
    backend: str | None = None

    @property
    def is_engine(self) -> bool:
        from edgeres.runners.registry import owner_of

        return self.backend is None and owner_of(self.path) == "tensorrt"


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def tensorrt_unavailable() -> str | None:
    """Why no TensorRT engine can be built or run here, or None when it can."""
    if not has_module("tensorrt"):
        return "TensorRT not installed"
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # a broken install (missing CUDA libraries) is skipped, not fatal
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        return f"TensorRT does not import: {first[:200]}"
    from edgeres.engine.sidecar import gpu_info

    if gpu_info()[0] is None:
        return "no CUDA GPU"
    return None


def onnx_fixed_batch(path: Path) -> int | None:
    """The batch size an ONNX model's input fixes, or None when its batch is dynamic."""
    from edgeres.export.onnx_meta import graph_inputs, load_onnx, value_dims

    inputs = graph_inputs(load_onnx(path))
    dims = value_dims(inputs[0]) if inputs else None
    n = dims[0] if dims else None
    return n if isinstance(n, int) and n > 0 else None


@dataclass
class Context:
    model: Path
    out: Path
    config: PipelineConfig
    calib: str | None
    eval_arg: str | None
    progress: bool
    state: PipelineState
    variants: dict[str, Variant] = field(default_factory=dict)
    #: Result files for the report: quantize.json, eval_*.json, bench.json.
    sources: list[Path] = field(default_factory=list)
    report: ReportPaths | None = None
    #: The batch size model.fp32.onnx fixes (None: dynamic); set by the export stage.
    fixed_batch: int | None = None

    @property
    def fp32(self) -> Path:
        return self.out / FP32_ONNX

    @property
    def eval_batch(self) -> int:
        """The batch size of every evaluation: eval.batch_size, or the model's fixed batch."""
        return self.fixed_batch or self.config.eval.batch_size

    def rel(self, path: Path) -> str:
        """How the result files name a file: relative to OUT (so a copied folder still works)."""
        try:
            return path.resolve().relative_to(self.out.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    @property
    def threads(self) -> int | None:
        return self.config.bench.threads

    def train_split(self) -> TrainingSplit | None:
        """What the export stage found of the checkpoint's training run: data and validation split."""
        path = self.out / TRAIN_SPLIT
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return TrainingSplit.from_dict(data) if isinstance(data, dict) else None

    def eval_data(self) -> tuple[str | None, str]:
        """The evaluation data and how it was chosen; (None, why) when there is none."""
        if self.eval_arg:
            return self.eval_arg, "--eval"
        split = self.train_split()
        if split is not None:
            return split.data, "the held-out images of the data the checkpoint was trained on"
        return None, (
            "no evaluation data: give --eval DATA (MODEL is not an edgeres checkpoint "
            "whose training data is known)"
        )

    def eval_images(self, spec: str) -> tuple[ImageSource, np.ndarray, str]:
        """The images accuracy is measured on, never ones the model was trained or calibrated on.

        :func:`edgeres.data.holdout.held_out_indices` says which (the rule ``edgeres quantize``
        follows too): on the data the checkpoint was trained on, its recorded validation images;
        on the calibration data, the 10% calibration holds out. Then a class-stratified sample of
        ``eval.size``; for a model whose batch is fixed at N, a multiple of N of them.
        """
        import numpy as np

        from edgeres.data import open_source, stratified_sample

        source = open_source(spec)
        labels = source.labels
        split = self.train_split()
        if split is not None and split.validation_of(spec) is not None:
            self._check_training_data(source, spec, split)
        # quantize is given the same split and calibration data, so calibration left these out
        calib = self.calib if self.quantize_planned else None
        held, note = held_out_indices(labels, spec, calib=calib, split=split, seed=self.config.quantize.seed)
        candidates = held if held is not None else np.arange(len(source), dtype=np.int64)
        if held is None:
            note = f"{len(source)} images of {spec}"
        if len(candidates) and candidates.max() >= len(source):
            raise EdgeresError(
                f"the recorded validation split does not fit {spec} ({len(source)} images); give --eval DATA"
            )
        size = self.config.eval.size
        if size is not None and size < len(candidates):
            candidates = candidates[stratified_sample(labels[candidates], size, seed=self.config.eval.seed)]
            note = f"{size} of {note.removeprefix('the ')}"
        n = self.fixed_batch
        if n is not None and n > 1 and len(candidates) % n:
            dropped = len(candidates) % n
            candidates = candidates[: len(candidates) - dropped]
            note += f" (less {dropped}: the model takes batches of exactly {n})"
        return source, candidates, note

    def label_map(self, source: ImageSource) -> LabelMap:
        """How ``source``'s labels map to the model's outputs: by class name (see align_labels)."""
        from edgeres.data import align_labels
        from edgeres.export.onnx_meta import read_onnx_meta

        meta = read_onnx_meta(self.fp32)
        ignore = self.config.eval.ignore_unknown_classes
        return align_labels(source, meta.class_names, meta.num_classes, ignore_unknown=ignore)

    def _check_training_data(self, source: ImageSource, spec: str, split: TrainingSplit) -> None:
        """Refuse to reuse a recorded validation split on data that is not what the model trained on.

        The split is a list of image numbers: on another folder, or on the same folder with images
        added or removed, they name other images (training ones among them).
        """
        from edgeres.export.onnx_meta import read_onnx_meta

        fix = "give --eval DATA with images the model was not trained on"
        names = read_onnx_meta(self.fp32).class_names if self.fp32.is_file() else ()
        if names and tuple(source.class_names) != tuple(names):
            raise EdgeresError(
                f"{spec} is not the data the checkpoint was trained on: its classes "
                f"({_few(source.class_names)}) are not the model's ({_few(names)}); {fix}"
            )
        expected = split.num_images
        if expected is not None and expected != len(source):
            raise EdgeresError(
                f"{spec} has {len(source)} images but the checkpoint was trained on {expected} there: "
                f"it has changed since (or is another folder), so its held-out images are unknown; {fix}"
            )

    @property
    def quantize_planned(self) -> bool:
        return self.calib is not None and "quantize" not in self.config.skip


def _few(names: tuple[str, ...] | list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return (shown + (", ..." if len(names) > limit else "")) or "none"
