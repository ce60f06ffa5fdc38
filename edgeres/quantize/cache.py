"""The calibration cache: calibrated ranges as JSON, tied to the model and the images they came from.

A cache lets ``edgeres quantize`` skip calibration on a rerun. It records the format version,
the method and settings, every tensor's range, the number of images, the SHA-256 of the ONNX
model it was made for, a hash of the calibration set and the edgeres version. Loading checks
the model hash (and the calibration-set hash when given) so ranges never silently go to
another model. Floats are written with ``repr``, so they load back bit for bit.

A range must be finite, ordered (lo <= hi) and within :data:`RANGE_LIMIT` (65504, float16's
largest value) on both ends. The activations of an image classifier whose inputs are normalized
and whose convs are followed by BatchNorm stay within a few hundred; a network that runs in
float16 (TensorRT builds INT8 engines with float16 fallback) cannot hold a larger value at all;
and a range wider than that gives an 8-bit step above 500, which rounds every ordinary activation
to zero: the model's output would no longer depend on its input. A cache with such a range is
damaged (or edited) and is refused (:class:`EdgeresError`, exit 1), and calibration never writes one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeres.atomic import atomic_path
from edgeres.errors import EdgeresError, UsageError
from edgeres.quantize.ranges import Ranges, TensorRange
from edgeres.quantize.settings import CalibrationSettings

if TYPE_CHECKING:
    from edgeres.quantize.collect import CalibrationResult

__all__ = [
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "RANGE_LIMIT",
    "CacheInfo",
    "check_range",
    "load_cache",
    "model_sha256",
    "save_cache",
]

CACHE_FORMAT = "edgeres-calibration-cache"
CACHE_VERSION = 1
_AGAIN = "delete it or run calibration again without --calib-cache"
#: The largest |lo| or |hi| a calibrated range may have (see the module docstring).
RANGE_LIMIT = 65504.0


@dataclass(frozen=True)
class CacheInfo:
    """Everything in a cache besides the ranges."""

    path: Path
    version: int
    method: str
    settings: CalibrationSettings
    num_images: int
    model_hash: str
    calib_hash: str
    edgeres_version: str


def model_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a model file's bytes: the ``model_hash`` a cache is tied to."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise EdgeresError(f"cannot read model '{path}' to hash it: {exc.strerror or exc}") from exc
    return h.hexdigest()


def save_cache(
    path: str | os.PathLike[str],
    result: CalibrationResult,
    model_hash: str,
    calib_hash: str,
) -> Path:
    """Write ``result``'s ranges and settings to ``path`` atomically; returns ``path``.

    ``model_hash`` is the model file's SHA-256 (:func:`model_sha256`); ``calib_hash`` any string
    that identifies the calibration images (e.g. a manifest's hash over image names and contents).
    """
    from edgeres.version import __version__

    settings = result.settings
    for r in result.ranges.values():
        problem = check_range(r.name, r.lo, r.hi)
        if problem:
            raise EdgeresError(
                f"calibration gave {problem}; check the model and its preprocessing (mean/std)"
            )
    data = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "edgeres_version": __version__,
        "method": str(result.method),
        "settings": settings.to_dict(),
        "num_images": int(result.num_images),
        "model_sha256": str(model_hash),
        "calibration_set_hash": str(calib_hash),
        "tensors": [{"name": r.name, "lo": float(r.lo), "hi": float(r.hi)} for r in result.ranges.values()],
    }
    target = Path(path)
    data.update(_derived(target, data))
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    with atomic_path(target, suffix=".json.tmp") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


#: What a cache keeps besides the ranges, derived from them (bias corrections, learned rounding).
_DERIVED = ("bias_corrections", "learned_rounding")


def _derived(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """What the cache at ``path`` derived from the very ranges ``data`` holds (same model, images,
    method, settings and ranges): kept when calibration runs again, so a rerun of an interrupted
    quantize finds the layers it finished. Anything else, or an unreadable file, keeps nothing."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    same = ["format", "version", "method", "settings", "num_images", "model_sha256", "calibration_set_hash"]
    same.append("tensors")
    if not isinstance(old, dict) or any(old.get(k) != data.get(k) for k in same):
        return {}
    return {k: old[k] for k in _DERIVED if k in old}


def load_cache(
    path: str | os.PathLike[str], *, model_hash: str | None = None, calib_hash: str | None = None
) -> tuple[Ranges, CacheInfo]:
    """Ranges and information from a cache.

    :class:`EdgeresError` (exit 1) when it is unreadable, damaged or newer than this edgeres;
    :class:`UsageError` (exit 2) when it does not exist or belongs to another model or image set.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"calibration cache {path} does not exist; run calibration to create it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeresError(f"cannot read calibration cache {path} ({exc}); {_AGAIN}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgeresError(f"calibration cache {path} is not valid JSON ({exc}); {_AGAIN}") from exc
    ranges, info = _parse(path, data)
    if model_hash is not None and info.model_hash != model_hash:
        raise UsageError(
            f"calibration cache {path} was made for another model (hash {info.model_hash[:12]}, "
            f"this model {model_hash[:12]}); {_AGAIN}"
        )
    if calib_hash is not None and info.calib_hash != calib_hash:
        raise UsageError(
            f"calibration cache {path} was made with other calibration images (hash {info.calib_hash[:12]}, "
            f"these {calib_hash[:12]}); {_AGAIN}"
        )
    return ranges, info


def _parse(path: Path, data: Any) -> tuple[Ranges, CacheInfo]:
    def bad(reason: str) -> EdgeresError:
        return EdgeresError(f"calibration cache {path} is malformed ({reason}); {_AGAIN}")

    if not isinstance(data, Mapping) or data.get("format") != CACHE_FORMAT:
        raise bad("not an edgeres calibration cache")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad("no format version")
    if version > CACHE_VERSION:
        raise EdgeresError(
            f"calibration cache {path} has format version {version}, newer than this edgeres reads "
            f"({CACHE_VERSION}); upgrade edgeres or {_AGAIN}"
        )
    try:
        settings = CalibrationSettings.from_dict(data["settings"])
        ranges: Ranges = {}
        for entry in data["tensors"]:
            name, lo, hi = str(entry["name"]), _number(entry["lo"]), _number(entry["hi"])
            problem = check_range(name, lo, hi)
            if problem:
                raise ValueError(problem)
            r = TensorRange(name, lo, hi)
            if r.name in ranges:
                raise ValueError(f"tensor {r.name} appears twice")
            ranges[r.name] = r
        info = CacheInfo(
            path=path,
            version=version,
            method=str(data["method"]),
            settings=settings,
            num_images=int(data["num_images"]),
            model_hash=str(data["model_sha256"]),
            calib_hash=str(data["calibration_set_hash"]),
            edgeres_version=str(data.get("edgeres_version", "unknown")),
        )
    except KeyError as exc:
        raise bad(f"missing {exc}") from exc
    except (TypeError, ValueError, UsageError) as exc:
        raise bad(str(exc).split(";")[0]) from exc
    return ranges, info


def check_range(name: str, lo: float, hi: float) -> str | None:
    """What is wrong with the range [lo, hi] of tensor ``name`` (None when nothing is)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"a range of tensor {name} that is not finite: [{lo!r}, {hi!r}]"
    if lo > hi:
        return f"an empty range of tensor {name}: lo {lo!r} above hi {hi!r}"
    worst = max(abs(lo), abs(hi))
    if worst > RANGE_LIMIT:
        return (
            f"an absurd range of tensor {name}: {worst!r} is beyond +-{RANGE_LIMIT:g}, "
            "float16's largest value"
        )
    return None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"range bound {value!r} is not a number")
    return float(value)
