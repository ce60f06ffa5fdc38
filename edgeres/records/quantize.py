"""The quantize result file: ``edgeres quantize --json`` and the pipeline's ``quantize.json``.

``{"kind": "edgeres.quantize", "schema": 1, "fp32_onnx", "meta", "method", "cache",
"calib_images", "reused_cache", "targets": [...], "fp32_top1", "fp32_top5", "eval_images",
"selection_note", "method_scores"}``: the FP32 model, how it was calibrated, its accuracy
on the evaluation images, and one entry per INT8 layout written.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from edgeres.records.eval import ClassScore
from edgeres.records.fields import FieldError, Fields
from edgeres.records.files import header, read_record, write_record

if TYPE_CHECKING:
    from edgeres.quantize.workflow import QuantizeReport, TargetReport

__all__ = ["QuantizeRecord", "TargetRecord", "read_quantize", "write_quantize"]


@dataclass(frozen=True)
class BiasCorrectionRecord:
    """What bias correction did for one INT8 model: layers corrected, images, time, shifts removed."""

    layers: int
    images: int
    seconds: float
    mean_abs_shift: float
    #: Per layer: node name -> (mean |shift|, largest |shift|) over its output channels.
    per_layer: tuple[tuple[str, float, float], ...] = ()
    #: The shifts came from the calibration cache, not from a pass over images.
    reused: bool = False

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> BiasCorrectionRecord:
        return cls.read(Fields(dict(d), "bias_correction."))

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "images": self.images,
            "seconds": self.seconds,
            "mean_abs_shift": self.mean_abs_shift,
            "reused": self.reused,
            "per_layer": [{"node": n, "mean_abs": m, "max_abs": x} for n, m, x in self.per_layer],
        }

    @classmethod
    def read(cls, f: Fields) -> BiasCorrectionRecord:
        per_layer = []
        for layer in f.objects("per_layer"):
            per_layer.append(
                (layer.required_text("node"), layer.number("mean_abs") or 0.0, layer.number("max_abs") or 0.0)
            )
        return cls(
            layers=f.required_integer("layers"),
            images=f.required_integer("images"),
            seconds=f.number("seconds") or 0.0,
            mean_abs_shift=f.number("mean_abs_shift") or 0.0,
            per_layer=tuple(per_layer),
            reused=f.raw("reused") is True,
        )


@dataclass(frozen=True)
class LayerRoundingRecord:
    node: str
    weights: int
    #: Share of the weights rounded the other way than nearest.
    flipped: float
    #: Mean squared layer-output error per position, nearest and learned (None: from the cache).
    error_nearest: float | None = None
    error_learned: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RoundingRecord:
    """What learned rounding did for one INT8 model: layers, images, time, how much it changed."""

    method: str
    layers: int
    images: int
    seconds: float
    flipped: float
    #: Share of the summed layer-output error of nearest rounding that learned rounding removed.
    error_reduction: float | None = None
    #: Layers whose integers came from the calibration cache.
    reused_layers: int = 0
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    per_layer: tuple[LayerRoundingRecord, ...] = ()
    #: The most its temporary files held at once, MB (absent in files written before it was kept).
    temp_mb: float | None = None

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> RoundingRecord:
        return cls.read(Fields(dict(d), "rounding."))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["settings"] = dict(self.settings)
        d["per_layer"] = [r.to_dict() for r in self.per_layer]
        return d

    @classmethod
    def read(cls, f: Fields) -> RoundingRecord:
        per_layer = tuple(
            LayerRoundingRecord(
                node=layer.required_text("node"),
                weights=layer.required_integer("weights"),
                flipped=layer.number("flipped") or 0.0,
                error_nearest=layer.number("error_nearest"),
                error_learned=layer.number("error_learned"),
                seconds=layer.number("seconds") or 0.0,
            )
            for layer in f.objects("per_layer")
        )
        return cls(
            method=f.required_text("method"),
            layers=f.required_integer("layers"),
            images=f.required_integer("images"),
            seconds=f.number("seconds") or 0.0,
            flipped=f.number("flipped") or 0.0,
            error_reduction=f.number("error_reduction"),
            reused_layers=f.integer("reused_layers", 0) or 0,
            settings=dict(f.mapping("settings")),
            per_layer=per_layer,
            temp_mb=f.number("temp_mb"),
        )


@dataclass(frozen=True)
class TargetRecord:
    """One INT8 model: its layout (cpu, tensorrt, openvino), file, what stayed float, and its accuracy."""

    target: str
    path: str
    num_quantized_nodes: int
    excluded_nodes: tuple[str, ...] = ()
    top1: float | None = None
    top5: float | None = None
    agreement: float | None = None
    #: Top-1 points lost against FP32 on the evaluation images (positive = worse).
    drop: float | None = None
    per_class: tuple[ClassScore, ...] = ()
    #: Layer -> top-1 agreement gained when only it stays float.
    sensitivity: tuple[tuple[str, float], ...] = ()
    bias_correction: BiasCorrectionRecord | None = None
    #: Bits of the int8 weights' range: 8, or 7 for a cpu layout made for CPUs without VNNI.
    weight_bits: int = 8
    #: Why the accuracy measured here differs from the model's elsewhere (see eval records).
    caveat: str | None = None
    #: Learned rounding, where it ran (None: nearest).
    rounding: RoundingRecord | None = None

    @classmethod
    def of(cls, t: TargetReport) -> TargetRecord:
        return cls(
            target=t.target,
            path=str(t.path),
            num_quantized_nodes=int(t.num_quantized_nodes),
            excluded_nodes=tuple(t.excluded_nodes),
            top1=t.top1,
            top5=t.top5,
            agreement=t.agreement,
            drop=t.drop,
            per_class=tuple(ClassScore(str(n), int(c), int(total)) for n, (c, total) in t.per_class.items()),
            sensitivity=tuple((str(k), float(v)) for k, v in t.sensitivity.items()),
            bias_correction=BiasCorrectionRecord.of(t.bias_correction) if t.bias_correction else None,
            weight_bits=int(t.weight_bits),
            caveat=t.caveat,
            rounding=RoundingRecord.of(t.rounding) if t.rounding else None,
        )

    def without_accuracy(self) -> TargetRecord:
        return dataclasses.replace(
            self, top1=None, top5=None, agreement=None, drop=None, per_class=(), caveat=None
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "path": self.path,
            "num_quantized_nodes": self.num_quantized_nodes,
            "excluded_nodes": list(self.excluded_nodes),
            "top1": self.top1,
            "top5": self.top5,
            "agreement": self.agreement,
            "drop": self.drop,
            "per_class": {c.name: [c.correct, c.total] for c in self.per_class},
            "sensitivity": dict(self.sensitivity),
            "bias_correction": self.bias_correction.to_dict() if self.bias_correction else None,
            "weight_bits": self.weight_bits,
            "caveat": self.caveat,
            "rounding": self.rounding.to_dict() if self.rounding else None,
        }

    @classmethod
    def read(cls, f: Fields) -> TargetRecord:
        per_class = []
        for name, ct in f.mapping("per_class").items():
            if not (isinstance(ct, list) and len(ct) == 2 and all(type(v) is int for v in ct)):
                raise FieldError(f"{f.where}per_class.{name}", "a pair of integers [correct, total]", ct)
            per_class.append(ClassScore(str(name), ct[0], ct[1]))
        return cls(
            target=f.required_text("target"),
            path=f.required_text("path"),
            num_quantized_nodes=f.integer("num_quantized_nodes", 0) or 0,
            excluded_nodes=f.texts("excluded_nodes"),
            top1=f.number("top1"),
            top5=f.number("top5"),
            agreement=f.number("agreement"),
            drop=f.number("drop"),
            per_class=tuple(per_class),
            sensitivity=f.numbers("sensitivity"),
            bias_correction=(
                BiasCorrectionRecord.read(f.sub("bias_correction")) if f.raw("bias_correction") else None
            ),
            weight_bits=f.integer("weight_bits", 8) or 8,
            caveat=f.text("caveat"),
            rounding=RoundingRecord.read(f.sub("rounding")) if f.raw("rounding") else None,
        )


@dataclass(frozen=True)
class QuantizeRecord:
    """A quantization: calibration, the FP32 baseline's accuracy, and each INT8 model written."""

    KIND: ClassVar[str] = "edgeres.quantize"
    NAME: ClassVar[str] = "quantize"
    SCHEMA: ClassVar[int] = 1

    fp32_onnx: str
    #: The model's metadata (architecture, classes, preprocessing), as plain data.
    meta: Mapping[str, Any]
    method: str
    cache: str
    calib_images: int
    reused_cache: bool
    targets: tuple[TargetRecord, ...]
    fp32_top1: float | None = None
    fp32_top5: float | None = None
    eval_images: int = 0
    selection_note: str = ""
    method_scores: tuple[tuple[str, float], ...] = ()

    @property
    def arch(self) -> str | None:
        arch = self.meta.get("arch")
        return arch if isinstance(arch, str) else None

    @classmethod
    def of(cls, report: QuantizeReport) -> QuantizeRecord:
        return cls(
            fp32_onnx=str(report.fp32_onnx),
            meta=json.loads(json.dumps(report.meta.to_dict(), default=str)),
            method=report.method,
            cache=str(report.cache),
            calib_images=int(report.calib_images),
            reused_cache=bool(report.reused_cache),
            targets=tuple(TargetRecord.of(t) for t in report.targets),
            fp32_top1=report.fp32_top1,
            fp32_top5=report.fp32_top5,
            eval_images=int(report.eval_images),
            selection_note=report.selection_note,
            method_scores=tuple((str(k), float(v)) for k, v in report.method_scores.items()),
        )

    def with_paths(self, name: Callable[[str], str]) -> QuantizeRecord:
        """The files (FP32 model, cache, INT8 models) named by ``name(path)`` instead."""
        targets = tuple(dataclasses.replace(t, path=name(t.path)) for t in self.targets)
        return dataclasses.replace(
            self, fp32_onnx=name(self.fp32_onnx), cache=name(self.cache), targets=targets
        )

    def without_accuracy(self, why: str) -> QuantizeRecord:
        """No accuracy (eval measures it instead), and ``why`` added to the selection note."""
        note = "; ".join(x for x in (self.selection_note, why) if x)
        return dataclasses.replace(
            self,
            fp32_top1=None,
            fp32_top5=None,
            eval_images=0,
            selection_note=note,
            targets=tuple(t.without_accuracy() for t in self.targets),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **header(self),
            "fp32_onnx": self.fp32_onnx,
            "meta": dict(self.meta),
            "method": self.method,
            "cache": self.cache,
            "calib_images": self.calib_images,
            "reused_cache": self.reused_cache,
            "targets": [t.to_dict() for t in self.targets],
            "fp32_top1": self.fp32_top1,
            "fp32_top5": self.fp32_top5,
            "eval_images": self.eval_images,
            "selection_note": self.selection_note,
            "method_scores": dict(self.method_scores),
        }

    @classmethod
    def from_dict(cls, data: Any, *, strict: bool = True) -> Self:
        f = Fields(data, strict=strict)
        f.sub("meta").text("arch")  # the report shows it
        return cls(
            fp32_onnx=f.required_text("fp32_onnx"),
            meta=f.mapping("meta"),
            method=f.text("method") or "",
            cache=f.text("cache") or "",
            calib_images=f.integer("calib_images", 0) or 0,
            reused_cache=f.flag("reused_cache"),
            targets=tuple(TargetRecord.read(t) for t in f.objects("targets")),
            fp32_top1=f.number("fp32_top1"),
            fp32_top5=f.number("fp32_top5"),
            eval_images=f.integer("eval_images", 0) or 0,
            selection_note=f.text("selection_note") or "",
            method_scores=f.numbers("method_scores"),
        )


def write_quantize(path: str | os.PathLike[str], record: QuantizeRecord) -> None:
    """Write a quantize result file, atomically."""
    write_record(path, record)


def read_quantize(path: str | os.PathLike[str], data: Any = None) -> QuantizeRecord:
    """Read a quantize result file (``data``: its JSON, when already loaded); one-line errors."""
    return read_record(path, QuantizeRecord, data)
