"""The model zoo: every network of the paper, by name.

Each entry is a small builder with keyword-only, typed arguments, registered with
the :func:`register` decorator. :func:`get_model` checks the keywords against the
builder's signature, so a typo or a bad value is a :class:`UsageError`, not a
traceback.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from edgeres.errors import UsageError
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from edgeres.models.cifar import CifarResNet, Shortcut
from edgeres.models.imagenet import BasicBlock, Bottleneck, ResNet

__all__ = ["FAMILIES", "REGISTRY", "ModelSpec", "get_model", "get_spec", "list_models", "register"]

Family = Literal["imagenet", "cifar"]
FAMILIES: tuple[Family, ...] = ("imagenet", "cifar")

_PREPROCESSING: dict[Family, Preprocessing] = {
    "imagenet": Preprocessing(input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "cifar": Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD),
}
_DEFAULT_NUM_CLASSES: dict[Family, int] = {"imagenet": 1000, "cifar": 10}


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about a network before building it."""

    name: str
    family: Family
    depth: int
    residual: bool
    builder: Callable[..., nn.Module]
    default_num_classes: int
    preprocessing: Preprocessing
    description: str


REGISTRY: dict[str, ModelSpec] = {}

_F = typing.TypeVar("_F", bound=Callable[..., nn.Module])


def register(family: Family, depth: int, *, residual: bool = True) -> Callable[[_F], _F]:
    """Add a builder to :data:`REGISTRY` under its function name; its docstring describes it."""

    def wrap(fn: _F) -> _F:
        name = fn.__name__
        if name in REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        REGISTRY[name] = ModelSpec(
            name=name,
            family=family,
            depth=depth,
            residual=residual,
            builder=fn,
            default_num_classes=_DEFAULT_NUM_CLASSES[family],
            preprocessing=_PREPROCESSING[family],
            description=inspect.getdoc(fn) or name,
        )
        return fn

    return wrap


def _sort_key(spec: ModelSpec) -> tuple[bool, int, int]:
    return (not spec.residual, FAMILIES.index(spec.family), spec.depth)


def list_models(family: str | None = None) -> list[str]:
    """Registered names: ImageNet ResNets, CIFAR ResNets, then the plain nets, by depth."""
    if family is not None and family not in FAMILIES:
        raise UsageError(f"unknown model family '{family}'; choose one of {', '.join(FAMILIES)}")
    specs = sorted(REGISTRY.values(), key=_sort_key)
    return [s.name for s in specs if family is None or s.family == family]


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; ``ResNet-18`` and ``resnet_18`` mean ``resnet18``."""
    key = _normalize(name)
    if key in REGISTRY:
        return REGISTRY[key]
    close = difflib.get_close_matches(key, list_models(), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise UsageError(f"unknown model '{name}'{hint}; run `edgeres models` to list them")


def _check_value(model: str, key: str, value: Any, annotation: Any) -> None:
    """Check a keyword's value against the builder's annotation (int, bool, Literal)."""
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise UsageError(f"{model}: {key} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    elif annotation is bool and not isinstance(value, bool):
        raise UsageError(f"{model}: {key} must be true or false, got {value!r}")
    elif annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise UsageError(f"{model}: {key} must be an integer, got {value!r}")


def get_model(name: str, *, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model with freshly initialized weights.

    ``num_classes`` defaults to the family's (1000 for ImageNet, 10 for CIFAR);
    other keywords go to the builder, e.g. ``shortcut="B"`` or ``zero_init_residual=True``.
    """
    spec = get_spec(name)
    kwargs["num_classes"] = spec.default_num_classes if num_classes is None else num_classes
    params = inspect.signature(spec.builder).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        accepted = ", ".join(params)
        raise UsageError(f"{spec.name} takes no option {', '.join(unknown)}; it accepts: {accepted}")
    hints = typing.get_type_hints(spec.builder)
    for key, value in kwargs.items():
        _check_value(spec.name, key, value, hints.get(key))
    if kwargs["num_classes"] < 1:
        raise UsageError(f"number of classes must be positive, got {kwargs['num_classes']}")
    return spec.builder(**kwargs)


# --- ImageNet (section 4.1, table 1) -------------------------------------------------------------


@register("imagenet", 18)
def resnet18(*, num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, zero_init_residual=zero_init_residual)


@register("imagenet", 34)
def resnet34(*, num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, zero_init_residual=zero_init_residual)


@register("imagenet", 50)
def resnet50(*, num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3]."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, zero_init_residual=zero_init_residual)


@register("imagenet", 101)
def resnet101(*, num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3]."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, zero_init_residual=zero_init_residual)


@register("imagenet", 152)
def resnet152(*, num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3]."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes=num_classes, zero_init_residual=zero_init_residual)


@register("imagenet", 18, residual=False)
def plain18(*, num_classes: int = 1000) -> ResNet:
    """Plain-18: ResNet-18's layers without shortcuts."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, residual=False)


@register("imagenet", 34, residual=False)
def plain34(*, num_classes: int = 1000) -> ResNet:
    """Plain-34: ResNet-34's layers without shortcuts."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, residual=False)


@register("imagenet", 50, residual=False)
def plain50(*, num_classes: int = 1000) -> ResNet:
    """Plain-50: ResNet-50's layers without shortcuts."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, residual=False)


@register("imagenet", 101, residual=False)
def plain101(*, num_classes: int = 1000) -> ResNet:
    """Plain-101: ResNet-101's layers without shortcuts."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes=num_classes, residual=False)


@register("imagenet", 152, residual=False)
def plain152(*, num_classes: int = 1000) -> ResNet:
    """Plain-152: ResNet-152's layers without shortcuts."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes=num_classes, residual=False)


# --- CIFAR-10 (section 4.2, table 6) -------------------------------------------------------------


def _cifar(depth: int, num_classes: int, shortcut: Shortcut, zero_init_residual: bool) -> CifarResNet:
    return CifarResNet(
        depth, num_classes=num_classes, shortcut=shortcut, zero_init_residual=zero_init_residual
    )


@register("cifar", 20)
def resnet20(
    *, num_classes: int = 10, shortcut: Shortcut = "A", zero_init_residual: bool = False
) -> CifarResNet:
    """ResNet-20 for CIFAR: 3 stages of 3 basic blocks."""
    return _cifar(20, num_classes, shortcut, zero_init_residual)


@register("cifar", 32)
def resnet32(
    *, num_classes: int = 10, shortcut: Shortcut = "A", zero_init_residual: bool = False
) -> CifarResNet:
    """ResNet-32 for CIFAR: 3 stages of 5 basic blocks."""
    return _cifar(32, num_classes, shortcut, zero_init_residual)


@register("cifar", 44)
def resnet44(
    *, num_classes: int = 10, shortcut: Shortcut = "A", zero_init_residual: bool = False
) -> CifarResNet:
    """ResNet-44 for CIFAR: 3 stages of 7 basic blocks."""
    return _cifar(44, num_classes, shortcut, zero_init_residual)


@register("cifar", 56)
def resnet56(
    *, num_classes: int = 10, shortcut: Shortcut = "A", zero_init_residual: bool = False
) -> CifarResNet:
    """ResNet-56 for CIFAR: 3 stages of 9 basic blocks."""
    return _cifar(56, num_classes, shortcut, zero_init_residual)


@register("cifar", 110)
def resnet110(
    *, num_classes: int = 10, shortcut: Shortcut = "A", zero_init_residual: bool = False
) -> CifarResNet:
    """ResNet-110 for CIFAR: 3 stages of 18 basic blocks."""
    return _cifar(110, num_classes, shortcut, zero_init_residual)


@register("cifar", 1202)
def resnet1202(
    *, num_classes: int = 10, shortcut: Shortcut = "A", zero_init_residual: bool = False
) -> CifarResNet:
    """ResNet-1202 for CIFAR: 3 stages of 200 basic blocks."""
    return _cifar(1202, num_classes, shortcut, zero_init_residual)


@register("cifar", 20, residual=False)
def plain20(*, num_classes: int = 10) -> CifarResNet:
    """Plain-20 for CIFAR: ResNet-20's layers without shortcuts."""
    return CifarResNet(20, num_classes=num_classes, residual=False)


@register("cifar", 32, residual=False)
def plain32(*, num_classes: int = 10) -> CifarResNet:
    """Plain-32 for CIFAR: ResNet-32's layers without shortcuts."""
    return CifarResNet(32, num_classes=num_classes, residual=False)


@register("cifar", 44, residual=False)
def plain44(*, num_classes: int = 10) -> CifarResNet:
    """Plain-44 for CIFAR: ResNet-44's layers without shortcuts."""
    return CifarResNet(44, num_classes=num_classes, residual=False)


@register("cifar", 56, residual=False)
def plain56(*, num_classes: int = 10) -> CifarResNet:
    """Plain-56 for CIFAR: ResNet-56's layers without shortcuts."""
    return CifarResNet(56, num_classes=num_classes, residual=False)


@register("cifar", 110, residual=False)
def plain110(*, num_classes: int = 10) -> CifarResNet:
    """Plain-110 for CIFAR: ResNet-110's layers without shortcuts."""
    return CifarResNet(110, num_classes=num_classes, residual=False)


@register("cifar", 1202, residual=False)
def plain1202(*, num_classes: int = 10) -> CifarResNet:
    """Plain-1202 for CIFAR: ResNet-1202's layers without shortcuts."""
    return CifarResNet(1202, num_classes=num_classes, residual=False)
