"""What travels with a model from stage to stage: its architecture, labels and
preprocessing, plus where it came from.

Every artifact edgeres writes (checkpoint, ONNX, calibration cache, engine
sidecar) stores a :class:`ModelMeta`, so no later stage asks the user again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeres.errors import UsageError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)


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
        h, w = self.input_size
        if h <= 0 or w <= 0:
            raise UsageError(f"input size must be positive, got {h}x{w}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise UsageError("mean and std need three values, one per RGB channel")
        if any(s <= 0 for s in self.std):
            raise UsageError(f"std values must be positive, got {self.std}")

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
        if self.num_classes <= 0:
            raise UsageError(f"number of classes must be positive, got {self.num_classes}")
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
        try:
            pre = dict(d.get("preprocessing") or {})
            if "input_size" in pre:
                pre["input_size"] = _pair(pre["input_size"])
            for key in ("mean", "std"):
                if key in pre:
                    pre[key] = tuple(float(v) for v in pre[key])
            prov = dict(d.get("provenance") or {})
            return cls(
                arch=d.get("arch"),
                num_classes=int(d["num_classes"]),
                class_names=tuple(str(c) for c in d.get("class_names") or ()),
                arch_options=dict(d.get("arch_options") or {}),
                preprocessing=Preprocessing(**pre),
                provenance=Provenance(**prov),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"model metadata is malformed ({exc}); re-create the file with edgeres") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise UsageError(f"model metadata is not valid JSON ({exc})") from exc

    def replace(self, **changes: Any) -> ModelMeta:
        return dataclasses.replace(self, **changes)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    items = tuple(int(v) for v in value)
    if len(items) == 1:
        return (items[0], items[0])
    if len(items) != 2:
        raise UsageError(f"input size needs one or two numbers, got {list(value)}")
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
