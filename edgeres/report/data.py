"""The report's data: one :class:`Variant` per model file, the environment and the sources.

Everything is a frozen dataclass; ``to_dict()`` gives the plain data of report.json.
Accuracies are fractions (0.93), drops and per-class changes are in percentage points
(positive drop = worse than FP32; tables show its negative, the change "Δ top-1"), latencies
in milliseconds. The headline latency is the median (:attr:`Latency.headline_ms`), ratios too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Accuracy",
    "ClassAccuracy",
    "ClassChange",
    "Environment",
    "Flip",
    "Latency",
    "PlaceAccuracy",
    "ReportData",
    "ReportPaths",
    "Source",
    "Variant",
]


@dataclass(frozen=True)
class ClassAccuracy:
    name: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None


@dataclass(frozen=True)
class Accuracy:
    """Top-1/top-5 of one variant on ``images`` images, as one input file measured it.

    ``reference`` is the model the ``agreement`` (fraction of images where both predict
    the same class) and ``reference_top1`` were measured against, on the same images.
    """

    top1: float | None
    top5: float | None
    images: int
    source: str
    per_class: tuple[ClassAccuracy, ...] = ()
    reference: str | None = None
    reference_top1: float | None = None
    reference_per_class: tuple[ClassAccuracy, ...] = ()
    agreement: float | None = None
    drop: float | None = None  # points, when the input file states it (edgeres quantize)

    def to_dict(self) -> dict[str, Any]:
        return {
            "top1": self.top1,
            "top5": self.top5,
            "images": self.images,
            "source": self.source,
            "reference": self.reference,
            "agreement": self.agreement,
            "per_class": {c.name: {"correct": c.correct, "total": c.total} for c in self.per_class},
        }


@dataclass(frozen=True)
class ClassChange:
    """One class's accuracy with this variant minus with FP32, in points, on the same images."""

    name: str
    baseline: float
    variant: float
    #: Images of the class, and how many each model gets right (0 when unknown).
    total: int = 0
    baseline_correct: int = 0
    variant_correct: int = 0

    @property
    def change(self) -> float:
        return 100.0 * (self.variant - self.baseline)

    @property
    def images_changed(self) -> int:
        """Images gained (positive) or lost (negative) against FP32."""
        return self.variant_correct - self.baseline_correct

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_points": self.change,
            "baseline_correct": self.baseline_correct,
            "variant_correct": self.variant_correct,
            "total": self.total,
        }


@dataclass(frozen=True)
class Flip:
    """``count`` images FP32 put in class ``before`` that this variant puts in ``after``."""

    before: str
    after: str
    count: int


@dataclass(frozen=True)
class Latency:
    """One benchmark row: a batch size on one backend and device; ``error`` when it did not run."""

    batch: int
    backend: str
    device: str
    mean_ms: float | None = None
    median_ms: float | None = None
    p99_ms: float | None = None
    throughput: float | None = None
    cv: float | None = None
    noisy: bool = False
    iterations: int = 0
    compute_mean_ms: float | None = None
    error: str | None = None
    #: median latency / FP32's median latency at the same batch, backend and device (< 1: faster).
    ratio: float | None = None
    #: Why this time means little (e.g. FP16 timed on a CPU); such rows get no ratio.
    caveat: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.mean_ms is not None

    @property
    def headline_ms(self) -> float | None:
        """The median: robust to the outliers a busy machine adds; the mean when none was recorded."""
        return self.median_ms if self.median_ms is not None else self.mean_ms

    @property
    def where(self) -> str:
        return f"{self.backend}/{self.device}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "backend": self.backend,
            "device": self.device,
            "mean_ms": self.mean_ms,
            "median_ms": self.median_ms,
            "p99_ms": self.p99_ms,
            "throughput": self.throughput,
            "cv": self.cv,
            "noisy": self.noisy,
            "iterations": self.iterations,
            "compute_mean_ms": self.compute_mean_ms,
            "ratio_to_fp32": self.ratio,
            "ratio_of": "median_ms",
            "caveat": self.caveat,
            "error": self.error,
        }


@dataclass(frozen=True)
class PlaceAccuracy:
    """A variant's accuracy on another backend/device than its headline accuracy's.

    The pipeline evaluates FP32 and the cpu-layout INT8 on OpenVINO as well as ONNX Runtime:
    the summary's row for ``where`` (``openvino/cpu``) shows this top-1, and the drop and
    agreement against the FP32 measured there, on the same images.
    """

    where: str
    accuracy: Accuracy
    drop: float | None = None
    agreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "accuracy": self.accuracy.to_dict(),
            "drop_points": self.drop,
            "agreement": self.agreement,
        }


@dataclass(frozen=True)
class Variant:
    """One model file (in one precision): what every input file says about it."""

    key: str
    label: str
    model: str
    precision: str
    baseline: bool = False
    target: str | None = None
    backend: str | None = None
    size_bytes: int | None = None
    accuracy: Accuracy | None = None
    drop: float | None = None
    agreement: float | None = None
    class_changes: tuple[ClassChange, ...] = ()
    #: FP32 predictions this variant changed, most frequent pair first.
    flips: tuple[Flip, ...] = ()
    latency: tuple[Latency, ...] = ()
    sensitivity: tuple[tuple[str, float], ...] = ()
    kept_float: tuple[str, ...] = ()
    #: Accuracy measured on other backends/devices (one eval file each), by place.
    accuracy_on: tuple[PlaceAccuracy, ...] = ()

    @property
    def size_mb(self) -> float | None:
        return None if self.size_bytes is None else self.size_bytes / 1e6

    @property
    def top1(self) -> float | None:
        return self.accuracy.top1 if self.accuracy else None

    def latency_at(self, batch: int, where: str | None = None) -> Latency | None:
        for row in self.latency:
            if row.batch == batch and (where is None or row.where == where):
                return row
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "model": self.model,
            "precision": self.precision,
            "baseline": self.baseline,
            "target": self.target,
            "backend": self.backend,
            "size_bytes": self.size_bytes,
            "accuracy": self.accuracy.to_dict() if self.accuracy else None,
            "drop_points": self.drop,
            "top1_change_points": None if self.drop is None else -self.drop,
            "agreement": self.agreement,
            "class_changes": {c.name: c.to_dict() for c in self.class_changes},
            "flips": [{"fp32": f.before, "variant": f.after, "count": f.count} for f in self.flips],
            "latency": [row.to_dict() for row in self.latency],
            "sensitivity": dict(self.sensitivity),
            "kept_float": list(self.kept_float),
            "accuracy_on": [p.to_dict() for p in self.accuracy_on],
        }


@dataclass(frozen=True)
class Environment:
    """Where the benchmarks ran, from a bench JSON's ``environment``."""

    cpu_model: str | None = None
    cpu_count: int | None = None
    cpu_features: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    libraries: tuple[tuple[str, str], ...] = ()
    python: str | None = None
    platform: str | None = None
    threads: int | None = None
    providers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_model": self.cpu_model,
            "cpu_count": self.cpu_count,
            "cpu_features": list(self.cpu_features),
            "gpus": list(self.gpus),
            "libraries": dict(self.libraries),
            "python": self.python,
            "platform": self.platform,
            "threads": self.threads,
            "onnxruntime_providers": list(self.providers),
        }


@dataclass(frozen=True)
class Source:
    """One input file and what kind of result it holds: eval, bench or quantize."""

    path: str
    kind: str


@dataclass(frozen=True)
class ReportData:
    title: str
    variants: tuple[Variant, ...]
    sources: tuple[Source, ...]
    environment: Environment | None = None
    notes: tuple[str, ...] = ()
    #: What produced the results and the report: (name, value) pairs, e.g. calibration, edgeres version.
    provenance: tuple[tuple[str, str], ...] = ()

    @property
    def baseline(self) -> Variant | None:
        return next((v for v in self.variants if v.baseline), None)

    @property
    def batches(self) -> tuple[int, ...]:
        return tuple(sorted({row.batch for v in self.variants for row in v.latency if row.ok}))

    def to_dict(self) -> dict[str, Any]:
        baseline = self.baseline
        return {
            "title": self.title,
            "baseline": baseline.key if baseline else None,
            "variants": [v.to_dict() for v in self.variants],
            "environment": self.environment.to_dict() if self.environment else None,
            "notes": list(self.notes),
            "provenance": dict(self.provenance),
            "sources": [{"path": s.path, "kind": s.kind} for s in self.sources],
        }


@dataclass(frozen=True)
class ReportPaths:
    """The files :func:`edgeres.report.build_report` wrote, and the data they show."""

    markdown: Path
    json: Path
    html: Path
    data: ReportData = field(repr=False)
