"""What travels with a model from stage to stage: its architecture, labels and
preprocessing, plus where it came from.

Every artifact edgeres writes (checkpoint, ONNX, calibration cache, engine
sidecar) stores a :class:`ModelMeta`, so no later stage asks the user again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeres.errors import EdgeresError, UsageError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

#: Published input statistics by name: (mean, std) on the [0, 1] scale.
PUBLISHED_NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
}
#: What training can normalize with: ``auto`` (CIFAR-10's for CIFAR-10's classes, else
#: ``data``), ``data`` (the training images' own statistics), or a published name.
NORMALIZATIONS: tuple[str, ...] = ("auto", "data", *PUBLISHED_NORMALIZATIONS)

#: Largest input height or width accepted, in pixels: one 4096x4096 RGB image is
#: already 200 MB as float32, so larger declared sizes are damage, not models.
MAX_INPUT_SIDE = 4096
#: Largest shorter-side resize before the center crop.
MAX_RESIZE = 2 * MAX_INPUT_SIDE
#: Largest number of classes accepted (the biggest public label sets have ~22k).
MAX_NUM_CLASSES = 100_000


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model's input tensor.

    The image is resized so its shorter side is ``resize`` pixels (no resize
    when it already has the input size), center-cropped to ``input_size``
    (height, width), scaled to [0, 1] and normalized with ``mean``/``std``.
    """

    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: int | None = None

    def __post_init__(self) -> None:
        size = self.input_size
        if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(_is_whole(v) for v in size):
            raise UsageError(f"input size must be two whole numbers (height, width), got {size!r}")
        h, w = size
        if h <= 0 or w <= 0:
            raise UsageError(f"input size must be positive, got {h}x{w}")
        if h > MAX_INPUT_SIDE or w > MAX_INPUT_SIDE:
            raise UsageError(f"input size {h}x{w} is larger than edgeres accepts ({MAX_INPUT_SIDE} per side)")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3:
                raise UsageError("mean and std need three values, one per RGB channel")
            if not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in values):
                raise UsageError(f"{name} values must be finite numbers, got {values!r}")
        if any(s <= 0 for s in self.std):
            raise UsageError(f"std values must be positive, got {self.std}")
        if self.resize is not None and (not _is_whole(self.resize) or not 0 < self.resize <= MAX_RESIZE):
            raise UsageError(f"resize must be a whole number from 1 to {MAX_RESIZE}, got {self.resize!r}")

    @property
    def resize_to(self) -> int:
        """Shorter-side size before the center crop (ImageNet's 256-for-224 rule)."""
        if self.resize is not None:
            return self.resize
        side = min(self.input_size)
        return side if side <= 64 else round(side * 256 / 224)


@dataclass(frozen=True)
class Provenance:
    """Where the weights came from, when known."""

    dataset: str | None = None
    epochs: int | None = None
    accuracy: float | None = None
    source: str | None = None


@dataclass(frozen=True)
class ModelMeta:
    """Everything a later stage needs to know about a classifier."""

    arch: str | None
    num_classes: int
    class_names: tuple[str, ...] = ()
    #: Builder keywords beyond num_classes, e.g. {"shortcut": "B"} for a CIFAR net.
    arch_options: Mapping[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if self.arch is not None and not isinstance(self.arch, str):
            raise UsageError(f"the architecture must be a name, got {self.arch!r}")
        if not _is_whole(self.num_classes):
            raise UsageError(f"number of classes must be a whole number, got {self.num_classes!r}")
        if self.num_classes <= 0:
            raise UsageError(f"number of classes must be positive, got {self.num_classes}")
        if self.num_classes > MAX_NUM_CLASSES:
            raise UsageError(
                f"{self.num_classes} classes is more than edgeres accepts ({MAX_NUM_CLASSES}); "
                "the model or its metadata is damaged"
            )
        if not all(isinstance(c, str) for c in self.class_names):
            raise UsageError("class names must be text")
        repeated = next((c for i, c in enumerate(self.class_names) if c in self.class_names[:i]), None)
        if repeated is not None:
            raise UsageError(f"class name '{repeated}' is given twice; each output needs its own name")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise UsageError(
                f"{len(self.class_names)} class names given for a model with "
                f"{self.num_classes} outputs; give one name per output"
            )

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names, or their indices as strings when no names are known."""
        return self.class_names or tuple(str(i) for i in range(self.num_classes))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings): safe for JSON and weights_only loading."""
        d = dataclasses.asdict(self)
        d["class_names"] = list(self.class_names)
        d["arch_options"] = dict(self.arch_options)
        pre = d["preprocessing"]
        pre["input_size"] = list(self.preprocessing.input_size)
        pre["mean"] = list(self.preprocessing.mean)
        pre["std"] = list(self.preprocessing.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelMeta:
        """Read metadata stored in a file, checking every field's type and range."""
        try:
            d = _mapping(d, "the metadata")
            pre = dict(_mapping(d.get("preprocessing") or {}, "preprocessing"))
            if "input_size" in pre:
                pre["input_size"] = _pair(pre["input_size"])
            for key in ("mean", "std"):
                if key in pre:
                    pre[key] = tuple(_number(v, key) for v in _list(pre[key], key))
            names = _list(d.get("class_names") or [], "class_names")
            if not all(isinstance(c, str) for c in names):
                raise ValueError("class_names is not a list of names")
            if "num_classes" not in d:
                raise ValueError("num_classes is missing")
            return cls(
                arch=d.get("arch"),
                num_classes=d["num_classes"],
                class_names=tuple(names),
                arch_options=dict(_mapping(d.get("arch_options") or {}, "arch_options")),
                preprocessing=Preprocessing(**pre),
                provenance=Provenance(**_mapping(d.get("provenance") or {}, "provenance")),
            )
        except (TypeError, ValueError, UsageError) as exc:
            why = f"model metadata is malformed ({exc}); re-create the file with edgeres"
            raise EdgeresError(why) from exc

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise EdgeresError(f"model metadata is not valid JSON ({exc})") from exc

    def replace(self, **changes: Any) -> ModelMeta:
        return dataclasses.replace(self, **changes)


def _is_whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} is a {type(value).__name__}, not a mapping")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{what} is a {type(value).__name__}, not a list")
    return list(value)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} holds {value!r}, not a finite number")
    return float(value)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if _is_whole(value):
        return (value, value)  # type: ignore[return-value]
    items = tuple(_list(value, "input_size"))
    if not all(_is_whole(v) for v in items):
        raise UsageError(f"input size needs whole numbers, got {list(items)}")
    if len(items) == 1:
        return (items[0], items[0])
    if len(items) != 2:
        raise UsageError(f"input size needs one or two numbers, got {list(items)}")
    return (items[0], items[1])


def parse_input_size(text: str) -> tuple[int, int]:
    """Parse ``224`` or ``224x224`` (or ``224,224``) into (height, width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        return _pair([int(p) for p in parts if p.strip()])
    except ValueError:
        raise UsageError(f"input size '{text}' is not a number or HxW, e.g. 224 or 32x32") from None


def parse_triple(text: str, what: str) -> tuple[float, float, float]:
    """Parse ``0.485,0.456,0.406`` into three floats."""
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"{what} '{text}' must be three comma-separated numbers") from None
    if len(values) != 3:
        raise UsageError(f"{what} '{text}' must be three comma-separated numbers, one per RGB channel")
    return (values[0], values[1], values[2])
