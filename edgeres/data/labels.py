"""Which model output each image's label means: the one place data classes meet model classes.

A source numbers its classes its own way (an image folder: sorted subfolder names; CIFAR and
.npz: their stored order). A model numbers its outputs in the order of its class names. When
the model has class names, labels are matched BY NAME (exactly, else ignoring case when that
is unambiguous): a data class the model lacks is an error naming it, or, with
``ignore_unknown``, its images are left out and counted. A model without class names takes
the source's own numbering (for a folder: sorted folder order), and a notice says so.
Either way no label may reach past the model's outputs.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeres.data.sources import FileListSource, ImageSource
from edgeres.errors import EdgeresError

__all__ = ["UNKNOWN", "LabelMap", "align_labels"]

log = logging.getLogger("edgeres.data")

#: The remapped label of an image whose class the model lacks (left out, counted).
UNKNOWN = -2

_FLAG = "--ignore-unknown-classes"
_cache: weakref.WeakKeyDictionary[ImageSource, dict[tuple[object, ...], LabelMap]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class LabelMap:
    """Source class index -> model output index (``UNKNOWN`` for a class the model lacks)."""

    #: int64, one entry per source class.
    mapping: np.ndarray
    #: The model's class names (or output indices as strings), for per-class results.
    model_names: tuple[str, ...]
    #: Source classes the model lacks, whose images are left out.
    unknown: tuple[str, ...] = ()
    #: True when labels were matched by name; False when the source's numbering is used.
    by_name: bool = False
    #: The source's class names the map was made for.
    source_names: tuple[str, ...] = ()

    def remap(self, labels: np.ndarray) -> np.ndarray:
        """Source labels -> model labels; -1 (unlabelled) stays -1, unknown classes become UNKNOWN."""
        labels = np.asarray(labels, dtype=np.int64)
        out = np.full(labels.shape, -1, np.int64)
        known = labels >= 0
        if len(self.mapping):
            out[known] = self.mapping[labels[known]]
        else:
            out[known] = labels[known]
        return out

    def name(self, label: int) -> str:
        return self.model_names[label] if 0 <= label < len(self.model_names) else str(label)


def _few(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _match(source_names: Sequence[str], model_names: Sequence[str]) -> list[int]:
    exact = {n: k for k, n in enumerate(model_names)}
    folded: dict[str, list[int]] = {}
    for k, n in enumerate(model_names):
        folded.setdefault(n.casefold(), []).append(k)
    out = []
    for name in source_names:
        if name in exact:
            out.append(exact[name])
        else:
            candidates = folded.get(name.casefold(), [])
            out.append(candidates[0] if len(candidates) == 1 else UNKNOWN)
    return out


def align_labels(
    source: ImageSource,
    model_class_names: Sequence[str],
    num_classes: int,
    *,
    ignore_unknown: bool = False,
) -> LabelMap:
    """How ``source``'s labels map to a model's outputs; see the module docstring.

    Raises :class:`EdgeresError` (one line) when a data class has no model class (unless
    ``ignore_unknown``), when two data classes match one model class, or when a label would
    reach past ``num_classes``. The result is cached per source, so its notice and warnings
    are logged once however many evaluations use it.
    """
    key = (tuple(model_class_names), num_classes, ignore_unknown)
    per_source = _cache.setdefault(source, {})
    if key in per_source:
        return per_source[key]
    result = _align(source, tuple(str(n) for n in model_class_names), num_classes, ignore_unknown)
    per_source[key] = result
    return result


def _align(source: ImageSource, names: tuple[str, ...], num_classes: int, ignore_unknown: bool) -> LabelMap:
    source_names = tuple(source.class_names)
    labels = source.labels
    labelled = labels[labels >= 0]
    model_names = names if names else tuple(str(i) for i in range(num_classes))
    if not len(labelled):  # no labels: predictions only
        return LabelMap(np.zeros(0, np.int64), model_names, source_names=source_names)
    if names and source_names:
        mapping = np.asarray(_match(source_names, names), dtype=np.int64)
        missing = [n for n, m in zip(source_names, mapping.tolist(), strict=True) if m == UNKNOWN]
        present = set(np.unique(labelled).tolist())
        missing_used = [n for k, n in enumerate(source_names) if n in missing and k in present]
        if missing_used and not ignore_unknown:
            raise EdgeresError(
                f"{source.describe()}: {len(missing_used)} class(es) the model does not have: "
                f"{_few(missing_used)}; the model's classes are {_few(names)}; remove those classes, "
                f"name the model's classes with --classes, or pass {_FLAG} to skip their images"
            )
        if missing_used:
            log.warning(
                "%s: skipping the images of %d class(es) the model does not have: %s",
                source.describe(),
                len(missing_used),
                _few(missing_used),
            )
        known = mapping[mapping >= 0]
        if len(np.unique(known)) < len(known):
            raise EdgeresError(
                f"{source.describe()}: several classes match the same model class (names differ only "
                "in case); rename them so each names one class"
            )
        return LabelMap(mapping, model_names, tuple(missing_used), True, source_names)
    top = int(labelled.max())
    if top >= num_classes:
        what = f"class '{source_names[top]}' (number {top})" if top < len(source_names) else f"label {top}"
        raise EdgeresError(
            f"{source.describe()} has {what} but the model has only {num_classes} outputs; "
            "evaluate it on data with the model's classes"
        )
    if source_names and not names and len(source_names) != num_classes:
        raise EdgeresError(
            f"{source.describe()} has {len(source_names)} classes and the model {num_classes} outputs with "
            "no class names, so which folder is which output cannot be known; name the model's classes "
            "with --classes"
        )
    if source_names and not names:
        log.warning(
            "the model has no class names: labels follow the data's %s order; "
            "name its classes with --classes to match them by name",
            "sorted folder" if isinstance(source, FileListSource) else "stored class",
        )
    elif names and not source_names:
        log.warning("the data has no class names: its labels are taken as the model's output indices")
    shown = names or source_names or model_names  # per-class results keep the folder names
    return LabelMap(np.zeros(0, np.int64), tuple(shown), source_names=source_names)
