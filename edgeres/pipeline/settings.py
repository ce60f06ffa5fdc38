"""What each pipeline stage is asked to do: one frozen, checked dataclass per stage.

A stage's settings are fingerprinted (:func:`fingerprint`) and recorded with its outputs,
so a changed setting reruns that stage and the ones after it. Values are checked on
creation and raise :class:`~edgeres.errors.UsageError`; :mod:`edgeres.pipeline.config`
builds them from ``edgeres.toml`` and the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from edgeres.bench.measure import DEFAULT_DURATION_S, DEFAULT_WARMUP_MS, BenchSettings
from edgeres.errors import UsageError
from edgeres.quantize.adaround import ROUNDINGS
from edgeres.quantize.settings import DEFAULT_METHOD, method_choices
from edgeres.quantize.targets import (
    DEFAULT_WEIGHT_BITS,
    TARGET_CHOICES,
    WEIGHT_BITS_CHOICES,
    TargetChoice,
    WeightBitsChoice,
)
from edgeres.settings_checks import check_choice as _choice

__all__ = [
    "DEFAULT_BENCH",
    "SKIPPABLE_STAGES",
    "STAGES",
    "BenchSettings",
    "EngineSettings",
    "EvalSettings",
    "ExportSettings",
    "Fp16Settings",
    "ModelSettings",
    "OpenVinoSettings",
    "PipelineConfig",
    "QuantizeSettings",
    "ReportSettings",
    "fingerprint",
]

#: The stages, in the order they run. The stage definitions (:data:`edgeres.pipeline.run.STAGE_DEFS`)
#: own the names; this copy lets the settings be checked without importing the stages, and a test
#: keeps the two equal.
STAGES: tuple[str, ...] = ("export", "fp16", "quantize", "engines", "eval", "bench", "report")
#: Every stage but export, which the others need.
SKIPPABLE_STAGES: tuple[str, ...] = STAGES[1:]
EnginePrecision = Literal["fp32", "fp16", "int8"]
Exporter = Literal["auto", "dynamo", "torchscript"]


def _positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"{name} must be a whole number of at least 1, got {value!r}")


def _non_negative(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be a whole number of 0 or more, got {value!r}")


@dataclass(frozen=True)
class ModelSettings:
    """How to read MODEL: the shared model options (``--arch``, ``--classes``, ...)."""

    arch: str | None = None
    num_classes: int | None = None
    classes: tuple[str, ...] | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    unsafe_pickle: bool = False

    def __post_init__(self) -> None:
        _positive("model.num_classes", self.num_classes)
        if self.input_size is not None and any(s < 1 for s in self.input_size):
            raise UsageError(f"model.input_size must be positive, got {self.input_size}")
        if self.std is not None and not all(s > 0 for s in self.std):
            raise UsageError(f"model.std must be above 0 in every channel, got {list(self.std)}")

    def overrides(self) -> Any:
        """These settings as :class:`edgeres.loading.MetaOverrides`."""
        from edgeres.loading import MetaOverrides

        return MetaOverrides(self.num_classes, self.classes, self.input_size, self.mean, self.std)


@dataclass(frozen=True)
class ExportSettings:
    """``edgeres export``: opset, batch axis, BatchNorm folding, exporter."""

    opset: int = 17
    dynamic_batch: bool = True
    fold_bn: bool = True
    exporter: Exporter = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or self.opset < 17:
            raise UsageError(f"export.opset must be 17 or newer, got {self.opset!r}")
        _choice("export.exporter", self.exporter, get_args(Exporter))


@dataclass(frozen=True)
class Fp16Settings:
    """The float16 ONNX: op types kept in float32 besides edgeres's defaults."""

    keep_fp32: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuantizeSettings:
    """``edgeres quantize``: method, calibration size and batch, targets, accuracy budget.

    ``target`` as for ``edgeres quantize`` (see :mod:`edgeres.quantize.targets`): "auto" is
    tensorrt where TensorRT is installed, else cpu; "all" writes every layout. The pipeline
    evaluates a tensorrt-layout model on ONNX Runtime as well as building its engine.
    """

    method: str = DEFAULT_METHOD
    percentile: float = 99.999
    calib_size: int = 512
    calib_batch: int | None = None
    target: TargetChoice = "auto"
    max_drop: float | None = None
    seed: int = 0
    #: Remove each layer's int8 weight-rounding shift from its bias (``quantize --bias-correction``).
    bias_correction: bool = True
    #: Node names or globs kept in float (``quantize --exclude``).
    exclude: tuple[str, ...] = ()
    #: Bits of the cpu layout's weights (``quantize --weight-bits``): "auto", 8 or 7.
    weight_bits: WeightBitsChoice = DEFAULT_WEIGHT_BITS
    #: How weights round to int8 (``quantize --rounding``): "nearest" or "adaround".
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        if isinstance(self.weight_bits, bool) or self.weight_bits not in WEIGHT_BITS_CHOICES:
            raise UsageError(f'quantize.weight_bits must be "auto", 8 or 7, got {self.weight_bits!r}')
        if not isinstance(self.bias_correction, bool):
            raise UsageError(f"quantize.bias_correction must be true or false, got {self.bias_correction!r}")
        if isinstance(self.exclude, str) or not all(isinstance(e, str) and e for e in self.exclude):
            raise UsageError(f"quantize.exclude must be a list of node names or globs, got {self.exclude!r}")
        object.__setattr__(self, "exclude", tuple(self.exclude))
        _choice("quantize.method", self.method, method_choices())
        _choice("quantize.target", self.target, TARGET_CHOICES)
        _choice("quantize.rounding", self.rounding, ROUNDINGS)
        _positive("quantize.calib_size", self.calib_size)
        _positive("quantize.calib_batch", self.calib_batch)
        if self.max_drop is not None and not self.max_drop >= 0:
            raise UsageError(f"quantize.max_drop must be 0 or more top-1 points, got {self.max_drop!r}")
        _non_negative("quantize.seed", self.seed)
        self.calibration()  # checks percentile

    def calibration(self) -> Any:
        """The :class:`edgeres.quantize.settings.CalibrationSettings` these settings ask for."""
        from edgeres.quantize.settings import CalibrationSettings

        method = "percentile" if self.method == "auto" else self.method
        return CalibrationSettings(
            method=method, percentile=float(self.percentile), batch_size=self.calib_batch
        )


@dataclass(frozen=True)
class EngineSettings:
    """TensorRT engines: which precisions, INT8 with FP16 fallback, batch profile, workspace.

    ``batch`` is MIN:OPT:MAX; None is ``1:B:M``, B the largest bench batch and M the larger
    of B and the eval batch size.
    """

    precisions: tuple[EnginePrecision, ...] = ("fp32", "fp16", "int8")
    int8_fp16: bool = True
    batch: str | None = None
    workspace: str | None = None

    def __post_init__(self) -> None:
        from edgeres.engine.options import parse_batch_profile, parse_workspace

        if not self.precisions:
            raise UsageError("engines.precisions is empty: give at least one of fp32, fp16, int8")
        for p in self.precisions:
            _choice("engines.precisions", p, get_args(EnginePrecision))
        if self.batch is not None:
            parse_batch_profile(self.batch)
        if self.workspace is not None:
            parse_workspace(self.workspace)


@dataclass(frozen=True)
class EvalSettings:
    """Accuracy: a class-stratified sample of ``size`` images (None: all), batch size, seed.

    ``ignore_unknown_classes``: skip (and count) images of classes the model lacks instead of failing.
    """

    size: int | None = None
    batch_size: int = 64
    seed: int = 0
    ignore_unknown_classes: bool = False

    def __post_init__(self) -> None:
        _positive("eval.size", self.size)
        _positive("eval.batch_size", self.batch_size)
        _non_negative("eval.seed", self.seed)


@dataclass(frozen=True)
class OpenVinoSettings:
    """OpenVINO, where it is installed: FP32 and the cpu-layout INT8 also evaluated and timed on it.

    ``enabled = false`` leaves OpenVINO out even where it is installed.
    """

    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise UsageError(f"openvino.enabled must be true or false, got {self.enabled!r}")


@dataclass(frozen=True)
class ReportSettings:
    title: str | None = None


#: bench's defaults, those of ``edgeres bench``: at batch 1, at least 10 runs and 200 ms of
#: warm-up, then at least 100 timed runs and 3 s, whichever lasts longer (so p99 of a fast model
#: comes from thousands of runs, and a slow one still gets 100).
DEFAULT_BENCH = BenchSettings(
    batches=(1,), warmup=10, warmup_ms=DEFAULT_WARMUP_MS, iters=100, duration=DEFAULT_DURATION_S
)
#: The two floors of the timing. A source that sets either (the file's [bench], the flags)
#: sets both: the one it leaves out is off, so ``iters`` alone is a run count, ``duration``
#: alone a time, and both are both minimums.
TIMING_FLOORS = ("iters", "duration")


def _default_bench() -> BenchSettings:
    return DEFAULT_BENCH


@dataclass(frozen=True)
class PipelineConfig:
    """Everything ``edgeres pipeline`` is asked to do besides MODEL and the data.

    ``skip`` names stages not to run (any but export). ``bench.threads`` also sets the
    ONNX Runtime threads of calibration and evaluation (where it changes no result, so it
    does not make them rerun).
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    fp16: Fp16Settings = field(default_factory=Fp16Settings)
    quantize: QuantizeSettings = field(default_factory=QuantizeSettings)
    engines: EngineSettings = field(default_factory=EngineSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    bench: BenchSettings = field(default_factory=_default_bench)
    openvino: OpenVinoSettings = field(default_factory=OpenVinoSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.skip:
            if name not in SKIPPABLE_STAGES:
                skippable = ", ".join(SKIPPABLE_STAGES)
                raise UsageError(f"cannot skip '{name}'; stages that can be skipped: {skippable}")
        if self.bench.backend != "auto" or self.bench.device != "cpu" or self.bench.precision != "fp32":
            raise UsageError("the pipeline picks each variant's backend and device; leave them unset")
        duration = self.bench.duration
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise UsageError(f"bench.duration must be a finite number of seconds above 0, got {duration!r}")

    def check(self) -> None:
        """What depends on more than one table; checked when a run starts, after the flags.

        A set ``engines.batch`` must take every bench batch: MIN at most the smallest, MAX at
        least the largest.
        """
        if self.engines.batch is None:
            return
        from edgeres.engine.options import parse_batch_profile

        profile = parse_batch_profile(self.engines.batch)
        smallest, largest = min(self.bench.batches), max(self.bench.batches)
        if profile.min > smallest:
            raise UsageError(
                f"engines.batch {self.engines.batch} takes no batch under {profile.min}, "
                f"but bench batch {smallest} is smaller; lower MIN or drop that bench batch"
            )
        if profile.max < largest:
            raise UsageError(
                f"engines.batch {self.engines.batch} takes no batch over {profile.max}, "
                f"but bench batch {largest} is larger; raise MAX or drop that bench batch"
            )

    def override(self, section: str, **changes: Any) -> PipelineConfig:
        """A copy with ``changes`` applied to one section; None values are left out.

        In ``bench``, changes that set ``iters`` or ``duration`` replace both (see
        :data:`TIMING_FLOORS`): ``override("bench", iters=20)`` times exactly 20 runs, whatever
        duration the config had.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        if section == "bench" and any(k in changes for k in TIMING_FLOORS):
            changes = {**dict.fromkeys(TIMING_FLOORS), **changes}
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


def fingerprint(*parts: Any) -> str:
    """A short hash of settings (dataclasses or plain data), stable across runs."""

    def plain(x: Any) -> Any:
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {str(k): plain(v) for k, v in x.items()}
        return x

    text = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
