"""How activation ranges are calibrated: the method, its parameters and the batch size.

Methods (all computed from one streaming histogram per tensor, see :mod:`edgeres.quantize.methods`):

``minmax``      the observed minimum and maximum; one outlier stretches the whole range.
``percentile``  |x| clipped at the ``percentile``-th percentile (99.999 by default).
``entropy``     TensorRT's calibrator: the clipping threshold whose 128-level quantized
                histogram is closest to the original in KL divergence.
``mse``         the clipping threshold with the least expected squared quantization error.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from edgeres.errors import UsageError

__all__ = [
    "ACTIVATION_BUDGET_BYTES",
    "DEFAULT_METHOD",
    "METHODS",
    "METHOD_CHOICES",
    "CalibrationSettings",
    "Method",
    "MethodSpec",
    "get_method",
    "method_names",
    "register_method",
]

#: A calibration method's name: one registered in :data:`METHOD_SPECS`.
Method = str
MethodKind = Literal["histogram", "data"]


@dataclass(frozen=True)
class MethodSpec:
    """One calibration method: its name, what it sees, and where its code is.

    ``kind`` says what the method is given. ``histogram`` methods turn one tensor's streaming
    |x| histogram into its range; they all share one calibration pass, so ``--method auto``
    and the calibration cache compare them at no extra cost. Their ``implementation``
    (``"module:function"``, imported when first used) is called as
    ``function(hist, name, settings) -> TensorRange``. ``data`` methods see the FP32 ONNX model
    and the calibration batches themselves (for methods that must run the model, such as
    rounding learned from activations), and are called as
    ``function(fp32_onnx: Path, batches: BatchReader, settings) -> Ranges``.
    """

    name: str
    implementation: str
    summary: str
    kind: MethodKind = "histogram"

    def load(self) -> Callable[..., Any]:
        """The method's function, imported now."""
        module, _, attr = self.implementation.partition(":")
        return cast(Callable[..., Any], getattr(importlib.import_module(module), attr))


#: Every calibration method by name, in the order they are listed and tried by ``--method auto``.
METHOD_SPECS: dict[str, MethodSpec] = {}


def register_method(
    name: str, implementation: str, summary: str, *, kind: MethodKind = "histogram"
) -> MethodSpec:
    """Add a calibration method under ``name``; see :class:`MethodSpec` for what it is called with."""
    if name in METHOD_SPECS or name == "auto":
        raise ValueError(f"calibration method {name!r} is registered already (or reserved)")
    if kind not in get_args(MethodKind):
        raise ValueError(f"kind must be one of {', '.join(get_args(MethodKind))}, got {kind!r}")
    spec = MethodSpec(name, implementation, summary, kind)
    METHOD_SPECS[name] = spec
    return spec


def method_names(kind: MethodKind | None = None) -> tuple[str, ...]:
    """The registered methods (of one ``kind``), in registration order."""
    return tuple(n for n, s in METHOD_SPECS.items() if kind is None or s.kind == kind)


def method_choices() -> tuple[str, ...]:
    """What ``--method`` accepts: every method, and ``auto`` (the histogram method that agrees best)."""
    return (*method_names(), "auto")


def get_method(name: str) -> MethodSpec:
    spec = METHOD_SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise UsageError(f"unknown calibration method '{name}'; choose one of {', '.join(method_names())}")
    return spec


_METHODS = "edgeres.quantize.methods"
register_method("minmax", f"{_METHODS}:minmax_method", "the observed minimum and maximum")
register_method("percentile", f"{_METHODS}:percentile_method", "|x| clipped at a percentile (99.999)")
register_method("entropy", f"{_METHODS}:entropy_method", "TensorRT's KL-divergence threshold")
register_method("mse", f"{_METHODS}:mse_method", "the threshold with the least squared error")

#: The built-in methods (all histogram methods); :func:`method_names` also lists those registered later.
METHODS: tuple[Method, ...] = method_names()
METHOD_CHOICES: tuple[str, ...] = method_choices()

# The default. Measured here on a resnet20 trained briefly on CIFAR-10 (65.8% top-1 in FP32),
# 512 calibration images, 2000 held-out ones, ORT CPU running both Q/DQ layouts:
#   top-1 (cpu / tensorrt layout): minmax 65.6 / 65.4, percentile 99.999 65.95 / 65.95,
#   entropy 65.65 / 65.55, mse 65.7 / 65.7; logit SQNR vs FP32 34.2-34.7 dB (cpu), 32.6-33.9 (trt).
# All within noise on this net; percentile was best or tied in both layouts and is predictable:
# it clips at most 1e-5 of the values by construction, where entropy (TensorRT's default) and
# mse can clip a heavy-tailed tensor much harder, and it costs nothing to compute.
DEFAULT_METHOD: Method = "percentile"

#: With ``batch_size=None`` a batch is as large as keeps the calibrated activations of one
#: batch under this many bytes (ONNX Runtime holds them all at once, and the histograms read
#: the previous batch's meanwhile). resnet50 fetches 68 MB per image: batches of 4, with which
#: calibration took 1.5x the time of an FP32 pass at the same batch size where batches of 1
#: took 1.7-2.4x (each call's overhead is paid per batch), at a peak RSS of 1.0 GB (0.8 GB).
ACTIVATION_BUDGET_BYTES = 320 * 2**20
MAX_AUTO_BATCH = 128
_MAX_BINS = 1 << 16


@dataclass(frozen=True)
class CalibrationSettings:
    """What :func:`edgeres.quantize.collect.collect_ranges` does; checked on creation.

    ``num_bins`` (a power of two, at least ``num_quantized_bins``) is the resolution of each
    tensor's |x| histogram; ``num_quantized_bins`` the number of levels the entropy method
    quantizes it to (128: 8-bit with sign). ``batch_size`` None picks the largest batch whose
    activations stay under :data:`ACTIVATION_BUDGET_BYTES` (at least 1, at most 128).
    ``sample_per_image`` caps how many values of each tensor and image go into its histogram
    (a systematic sample, see :func:`~edgeres.quantize.histogram.sample_stride`; min and max
    always see every value); None bins them all. The CIFAR nets (at most 16384 values per
    tensor and image) are never sampled; on resnet50 (up to 802816) sampling made calibration
    3x faster and moved the percentile/entropy/mse thresholds by a median 0.13/0.34/0.09%, less
    than calibrating on 32 other images did (0.17/0.87/0.10%).
    """

    method: Method = DEFAULT_METHOD
    percentile: float = 99.999
    num_bins: int = 2048
    num_quantized_bins: int = 128
    batch_size: int | None = None
    sample_per_image: int | None = 65536

    def __post_init__(self) -> None:
        get_method(self.method)  # a UsageError naming the choices when unknown
        p = self.percentile
        if (
            isinstance(p, bool)
            or not isinstance(p, int | float)
            or not (math.isfinite(p) and 50.0 <= p <= 100.0)
        ):
            raise UsageError(f"percentile must be a number from 50 to 100 (e.g. 99.999), got {p!r}")
        for name in ("num_bins", "num_quantized_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{name} must be a whole number, got {value!r}")
        nb, nq = self.num_bins, self.num_quantized_bins
        if not (2 <= nq <= 1024):
            raise UsageError(f"num_quantized_bins must be from 2 to 1024 (128 for int8), got {nq}")
        if nb & (nb - 1) or not (nq <= nb <= _MAX_BINS):
            raise UsageError(
                f"num_bins must be a power of two from num_quantized_bins ({nq}) to {_MAX_BINS} "
                f"(e.g. 2048), got {nb}"
            )
        b = self.batch_size
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise UsageError(f"calibration batch size must be a whole number of at least 1, got {b!r}")
        s = self.sample_per_image
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1024):
            raise UsageError(
                f"sample_per_image must be a whole number of at least 1024 or None (all), got {s!r}"
            )

    def replace(self, **changes: Any) -> CalibrationSettings:
        return dataclasses.replace(self, **changes)

    def resolve_batch_size(self, bytes_per_image: float) -> int:
        """``batch_size``, or the automatic one for activations of ``bytes_per_image`` each."""
        if self.batch_size is not None:
            return self.batch_size
        if bytes_per_image <= 0:
            return MAX_AUTO_BATCH
        return max(1, min(MAX_AUTO_BATCH, math.floor(ACTIVATION_BUDGET_BYTES / bytes_per_image)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CalibrationSettings:
        """Settings from :meth:`to_dict` output; unknown keys or bad values raise :class:`UsageError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown calibration setting(s): {', '.join(unknown)}")
        values = dict(d)
        if "percentile" in values and isinstance(values["percentile"], int):
            values["percentile"] = float(values["percentile"])
        return cls(**values)
