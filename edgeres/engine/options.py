"""What a TensorRT engine build is asked for: precision, batch profile, memory, caches, DLA.

Pure Python, light to import (onnx loads only in :func:`check_profile_fits`), so the
CLI can parse and check every option before TensorRT or a GPU is touched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeres.errors import UsageError
from edgeres.metadata import parse_input_size

__all__ = [
    "ENGINE_SUFFIX",
    "MAX_OPTIMIZATION_LEVEL",
    "BatchProfile",
    "EngineOptions",
    "ModelInput",
    "check_profile_fits",
    "check_profile_shapes",
    "parse_batch_profile",
    "parse_workspace",
]

ENGINE_SUFFIX = ".engine"
MAX_OPTIMIZATION_LEVEL = 5  # TensorRT's builder_optimization_level runs 0..5 (3 is its default)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 2**20, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}  # a bare number is MiB


@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes an engine accepts (``min``..``max``) and the one it is tuned for (``opt``)."""

    min: int = 1
    opt: int = 1
    max: int = 1

    def __post_init__(self) -> None:
        values = (self.min, self.opt, self.max)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise UsageError(f"batch sizes must be positive whole numbers, got {self}")
        if not self.min <= self.opt <= self.max:
            raise UsageError(f"batch profile {self} needs MIN <= OPT <= MAX")

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"

    @property
    def is_fixed(self) -> bool:
        return self.min == self.max

    def allows(self, n: int) -> bool:
        return self.min <= n <= self.max

    def shapes(self, chw: tuple[int, int, int]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The (min, opt, max) NCHW shapes for an input of ``chw``."""
        return ((self.min, *chw), (self.opt, *chw), (self.max, *chw))


def parse_batch_profile(text: str) -> BatchProfile:
    """``"MIN:OPT:MAX"`` (e.g. ``1:8:32``), one number ``N`` for a fixed batch ``N:N:N``, or a
    comma list of the sizes to run (bench's form, e.g. ``1,8,32``): a profile from the smallest
    to the largest, tuned for the first one listed (``8,1,32`` -> ``1:8:32``)."""
    text = str(text)
    if "," in text:
        sizes = _positive_ints(text.split(","))
        if sizes is None:
            raise UsageError(f"batch sizes '{text}' must be positive whole numbers separated by commas")
        return BatchProfile(min(sizes), sizes[0], max(sizes))
    numbers = _positive_ints(text.split(":")) or []
    if len(numbers) not in (1, 3):
        raise UsageError(
            f"batch profile '{text}' must be MIN:OPT:MAX (e.g. 1:8:32), one batch size, "
            "or the sizes to run (e.g. 1,8,32)"
        )
    if len(numbers) == 1:
        numbers *= 3
    return BatchProfile(numbers[0], numbers[1], numbers[2])


def _positive_ints(parts: list[str]) -> list[int] | None:
    """The parts as whole numbers, or None when one is not a number (sign and range checked later)."""
    try:
        return [int(p.strip()) for p in parts]
    except ValueError:
        return None


def parse_workspace(text: str | int) -> int:
    """Bytes for a workspace size: ``512`` (MiB), ``512M``, ``2G``, ``1.5GiB``, ``4096K``."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    match = _SIZE.match(str(text))
    if match is None:
        raise UsageError(f"workspace '{text}' is not a size; give MiB (512) or a unit (512M, 2G)")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size < 2**20:
        raise UsageError(f"workspace '{text}' is below 1 MiB; TensorRT needs more room to build")
    return size


@dataclass(frozen=True)
class EngineOptions:
    """How :func:`edgeres.engine.build.build_engine` builds an engine.

    ``fp16`` converts the ONNX to float16 first (a Q/DQ INT8 model becomes INT8 + FP16).
    ``workspace`` is bytes (None: TensorRT's default, the device's memory); ``output``
    None means next to the model (:meth:`engine_path`). ``input_size`` is only needed for
    an ONNX without edgeres metadata whose height and width are dynamic.
    """

    fp16: bool = False
    batch: BatchProfile = field(default_factory=BatchProfile)
    workspace: int | None = None
    timing_cache: Path | None = None
    dla_core: int | None = None
    builder_optimization_level: int | None = None
    output: Path | None = None
    input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.workspace is not None and self.workspace < 2**20:
            raise UsageError(f"workspace must be at least 1 MiB, got {self.workspace} bytes")
        if self.dla_core is not None and self.dla_core < 0:
            raise UsageError(f"DLA core must be 0 or more, got {self.dla_core}")
        level = self.builder_optimization_level
        if level is not None and not 0 <= level <= MAX_OPTIMIZATION_LEVEL:
            raise UsageError(
                f"builder optimization level must be 0..{MAX_OPTIMIZATION_LEVEL} (TensorRT's default 3), "
                f"got {level}"
            )
        if self.output is not None and Path(self.output).is_dir():
            raise UsageError(f"'{self.output}' is a folder; give the .engine file to write")
        if self.timing_cache is not None and Path(self.timing_cache).is_dir():
            raise UsageError(f"timing cache '{self.timing_cache}' is a folder; give a file (e.g. trt.cache)")

    @classmethod
    def from_strings(
        cls,
        *,
        fp16: bool = False,
        batch: str = "1:1:1",
        workspace: str | None = None,
        timing_cache: str | os.PathLike[str] | None = None,
        dla_core: int | None = None,
        builder_optimization_level: int | None = None,
        output: str | os.PathLike[str] | None = None,
        input_size: str | None = None,
    ) -> EngineOptions:
        """Options from command-line text: ``batch="1:8:32"``, ``workspace="2G"``, ``input_size="224"``."""
        return cls(
            fp16=fp16,
            batch=parse_batch_profile(batch),
            workspace=None if workspace is None else parse_workspace(workspace),
            timing_cache=None if timing_cache is None else Path(timing_cache),
            dla_core=dla_core,
            builder_optimization_level=builder_optimization_level,
            output=None if output is None else Path(output),
            input_size=None if input_size is None else parse_input_size(input_size),
        )

    def engine_path(self, onnx_path: str | os.PathLike[str]) -> Path:
        """``output``, else ``model.engine`` (``model.fp16.engine`` with fp16) beside the model.

        Named by :func:`edgeres.naming.derived_path`: ``r20.fp32.onnx`` with fp16 gives ``r20.fp16.engine``.
        """
        if self.output is not None:
            return Path(self.output)
        from edgeres.naming import derived_path

        source = Path(onnx_path)
        if source.suffix.lower() != ".onnx":
            source = source.with_name(source.name + ".onnx")  # the whole name is the stem
        return derived_path(source, "fp16" if self.fp16 else None, ENGINE_SUFFIX)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the engine's sidecar."""
        return {
            "fp16": self.fp16,
            "batch": str(self.batch),
            "workspace_bytes": self.workspace,
            "timing_cache": None if self.timing_cache is None else str(self.timing_cache),
            "dla_core": self.dla_core,
            "builder_optimization_level": self.builder_optimization_level,
            "input_size": None if self.input_size is None else list(self.input_size),
        }


@dataclass(frozen=True)
class ModelInput:
    """The classifier input an engine is built for."""

    name: str
    channels: int
    height: int
    width: int
    #: The batch dimension when the ONNX fixes it, else None.
    fixed_batch: int | None

    @property
    def chw(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


def check_profile_fits(
    onnx_path: str | os.PathLike[str], profile: BatchProfile, *, input_size: tuple[int, int] | None = None
) -> ModelInput:
    """The model's input, after checking that ``profile`` fits it.

    A model with a fixed batch dimension only takes that batch; a dynamic height or width
    comes from the model's metadata (or ``input_size``).
    """
    from edgeres.export.onnx_meta import check_classifier, graph_inputs, load_onnx, read_onnx_meta, value_dims

    path = Path(onnx_path)
    model = load_onnx(path)
    check_classifier(model, path.name)
    value = graph_inputs(model)[0]
    n, c, h, w = value_dims(value) or [None] * 4
    fixed = n if isinstance(n, int) and n > 0 else None
    if fixed is not None and not (profile.min == profile.max == fixed):
        raise UsageError(
            f"{path.name} has a fixed batch of {fixed}, so its engine takes only that batch, not {profile}; "
            f"use --batch {fixed}:{fixed}:{fixed} or re-export it with a dynamic batch"
        )
    if not isinstance(c, int) or c <= 0:
        raise UsageError(f"{path.name} does not fix its input channels; re-export it with edgeres")
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        if input_size is not None and tuple(input_size) != (h, w):
            raise UsageError(f"{path.name} takes {h}x{w} inputs, not {input_size[0]}x{input_size[1]}")
        height, width = h, w
    else:
        height, width = read_onnx_meta(path, input_size=input_size).preprocessing.input_size
    return ModelInput(value.name, c, height, width, fixed)


def check_profile_shapes(
    name: str, shapes: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``shapes`` (min, opt, max) for input ``name``, after checking TensorRT would take them.

    TensorRT's ``IOptimizationProfile.set_shape`` raises a bare RuntimeError on shapes of
    different ranks, a dimension below 1 or min > opt > max; this says which in one line.
    """
    lo, opt, hi = (tuple(int(d) for d in s) for s in shapes)
    if not len(lo) == len(opt) == len(hi):
        raise UsageError(f"the profile shapes of input {name} have different ranks: {lo}, {opt}, {hi}")
    if min((*lo, *opt, *hi), default=0) < 1:
        raise UsageError(f"the profile shapes of input {name} need every dimension >= 1: {lo}, {opt}, {hi}")
    for i, (a, b, c) in enumerate(zip(lo, opt, hi, strict=True)):
        if not a <= b <= c:
            raise UsageError(
                f"the profile of input {name} needs MIN <= OPT <= MAX in dimension {i}, got {a}, {b}, {c}"
            )
    return lo, opt, hi
