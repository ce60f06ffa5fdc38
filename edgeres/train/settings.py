"""What a training run is: the recipe (:class:`TrainSettings`) and what it produced (:class:`TrainResult`).

The defaults are the CIFAR-10 recipe of He et al. 2015, section 4.2: SGD with momentum
0.9, weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 at 50% and 75% of
training, 45k/5k train/validation split.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgeres.errors import UsageError
from edgeres.metadata import NORMALIZATIONS, ModelMeta, Preprocessing, Provenance
from edgeres.settings_checks import check_choice

__all__ = [
    "CACHES",
    "CIFAR10_CLASSES",
    "DEVICES",
    "NORMALIZATIONS",
    "RECIPE_FIELDS",
    "SCHEDULES",
    "TrainResult",
    "TrainSettings",
]

Schedule = Literal["step", "cosine"]
Device = Literal["auto", "cpu", "cuda"]
Cache = Literal["auto", "memory", "disk"]
SCHEDULES: tuple[str, ...] = ("step", "cosine")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
CACHES: tuple[str, ...] = ("auto", "memory", "disk")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: Settings a resumed run must share with the run it continues (the rest may change).
RECIPE_FIELDS: tuple[str, ...] = (
    "arch",
    "arch_options",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "val_split",
    "seed",
    "normalize",
)


@dataclass(frozen=True)
class TrainSettings:
    """One training run. Every field is checked on creation; a bad value is a :class:`UsageError`.

    * ``data``: any data spec :func:`edgeres.data.open_source` accepts (an image folder with one
      subfolder per class, a CIFAR batches folder, a .npz, a manifest, or ``"digits"``);
      the number of classes and their names come from it.
    * ``val_data``: separate validation images with the same classes; when given, ``val_split``
      is ignored and all of ``data`` is trained on. Otherwise ``val_split`` (a fraction, 0 for
      no validation) of ``data`` is held out, stratified and fixed by ``seed``.
    * ``schedule``: ``"step"`` divides the learning rate by 10 at 50% and 75% of training (the
      paper's), ``"cosine"`` anneals it to 0; both after ``warmup_epochs`` of linear warm-up.
    * ``device``: ``"auto"`` takes CUDA when there is a GPU. ``amp`` and ``channels_last``
      (``None`` = on with CUDA, off on CPU) speed up GPU training.
    * ``threads``: torch CPU threads (``None`` keeps torch's default); ``workers``: threads that
      decode image files for the cache (0 = up to 8).
    * ``normalize``: the mean/std the model's input is normalized with (one of
      :data:`NORMALIZATIONS`); they are written into the checkpoint, so export and quantize
      use them without flags.
    * ``cache``: ``"disk"`` keeps decoded image files in ``.edgeres-cache-<hash>.npz`` beside
      the data (else in ``cache_dir``, ~/.cache/edgeres or ``out``) so later runs skip
      decoding; ``"memory"`` decodes every run; ``"auto"`` is disk for image files.
    """

    arch: str
    data: str
    out: Path
    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Schedule = "step"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    val_split: float = 0.1
    val_data: str | None = None
    seed: int = 0
    workers: int = 0
    threads: int | None = None
    device: Device = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    arch_options: Mapping[str, Any] = field(default_factory=dict)
    cache: Cache = "auto"
    cache_dir: Path | None = None
    normalize: str = "auto"

    def __post_init__(self) -> None:
        from edgeres.models import get_spec

        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "data", str(self.data))
        object.__setattr__(self, "arch_options", dict(self.arch_options or {}))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "arch", get_spec(self.arch).name)
        if not self.data.strip():
            raise UsageError("no training data given; name an image folder, a .npz file or 'digits'")
        _int_at_least("epochs", self.epochs, 1)
        _int_at_least("batch size", self.batch_size, 1)
        _int_at_least("warm-up epochs", self.warmup_epochs, 0)
        _int_at_least("seed", self.seed, 0)
        _int_at_least("workers", self.workers, 0)
        if self.threads is not None:
            _int_at_least("threads", self.threads, 1)
        _number_in("learning rate", self.lr, 0.0, math.inf, low_open=True)
        _number_in("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _number_in("weight decay", self.weight_decay, 0.0, math.inf)
        _number_in("label smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        _number_in("validation split", self.val_split, 0.0, 1.0, high_open=True)
        if self.warmup_epochs >= self.epochs:
            raise UsageError(
                f"warm-up ({self.warmup_epochs} epochs) must be shorter than training ({self.epochs} epochs)"
            )
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("device", self.device, DEVICES)
        check_choice("cache", self.cache, CACHES)
        check_choice("normalization", self.normalize, NORMALIZATIONS)
        for name in ("amp", "channels_last"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise UsageError(f"{name} must be true, false or unset (auto), got {value!r}")
        if self.device == "cpu" and self.amp:
            raise UsageError("mixed precision (amp) needs a CUDA GPU; drop amp or use device 'cuda'")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and metrics.json)."""
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        d["cache_dir"] = None if self.cache_dir is None else str(self.cache_dir)
        d["arch_options"] = dict(self.arch_options)
        return d

    def recipe_changes(self, saved: Mapping[str, Any]) -> list[str]:
        """The :data:`RECIPE_FIELDS` where ``saved`` (a :meth:`to_dict`) differs, as 'name: old -> new'."""
        mine, then = self.to_dict(), self.with_defaults(saved)
        return [
            f"{name}: {then.get(name)!r} -> {mine[name]!r}"
            for name in RECIPE_FIELDS
            if _normal(then.get(name)) != _normal(mine[name])
        ]

    @classmethod
    def with_defaults(cls, saved: Mapping[str, Any]) -> dict[str, Any]:
        """``saved`` (a :meth:`to_dict` of any version) with the fields it predates at their defaults:
        a run recorded before a field existed was made with its default."""
        out = dict(saved)
        for f in dataclasses.fields(cls):
            if f.name in out:
                continue
            if f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            elif f.default is not dataclasses.MISSING:
                out[f.name] = f.default
        return out

    def replace(self, **changes: Any) -> TrainSettings:
        return dataclasses.replace(self, **changes)

    def model_meta(
        self, class_names: tuple[str, ...], mean: tuple[float, float, float], std: tuple[float, float, float]
    ) -> ModelMeta:
        """The metadata of the model this run trains (provenance epochs/accuracy filled in per checkpoint)."""
        from edgeres.models import get_spec

        pre = Preprocessing(input_size=get_spec(self.arch).preprocessing.input_size, mean=mean, std=std)
        how = f"{self.schedule} schedule, lr {self.lr:g}, batch {self.batch_size}, seed {self.seed}"
        prov = Provenance(dataset=self.dataset_name(class_names), epochs=0, source=f"edgeres train ({how})")
        return ModelMeta(self.arch, len(class_names), tuple(class_names), dict(self.arch_options), pre, prov)

    def dataset_name(self, class_names: tuple[str, ...]) -> str:
        """ "CIFAR-10" for CIFAR-10's classes, else the data's file or folder name ("cifar10/train")."""
        if tuple(n.lower() for n in class_names) == CIFAR10_CLASSES:
            return "CIFAR-10"
        path = Path(self.data)
        generic = path.name.lower() in {"train", "training", "images", "data", "val", "test"}
        return f"{path.parent.name}/{path.name}" if generic and path.parent.name else path.name


@dataclass(frozen=True)
class TrainResult:
    """What :func:`edgeres.train.train` produced.

    ``history`` has one row per completed epoch with the keys of ``METRIC_COLUMNS``;
    accuracies are fractions (0..1) and ``val_*`` are None without validation.
    ``finished`` is False when the run stopped early (``stop_after``). ``model`` is the
    trained network (last epoch, eval mode, on the training device).
    """

    out: Path
    last: Path
    best: Path
    metrics_csv: Path
    metrics_json: Path
    epochs_completed: int
    finished: bool
    best_epoch: int | None
    best_val_acc: float | None
    history: tuple[dict[str, Any], ...]
    meta: ModelMeta
    skipped_images: int
    model: Any = field(repr=False, compare=False)


def _normal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _int_at_least(what: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{what} must be a whole number of at least {low}, got {value!r}")


def _number_in(
    what: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise UsageError(f"{what} must be in {lo}{low:g}, {high:g}{hi}, got {value!r}")
