"""What changed against FP32, cut to what a reader can take in: the classes that moved most, the
most frequent prediction flips, and one line for the rest. report.json keeps everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgeres.report.data import ClassChange, Flip, Variant
from edgeres.report.tables import signed

__all__ = [
    "TOP_CLASSES",
    "TOP_FLIPS",
    "ClassRows",
    "class_rows",
    "flip_rows",
    "flipped_images",
    "rest_of_flips",
]

#: Classes shown in the per-class table and figure; the rest are summarised in one line.
TOP_CLASSES = 10
#: Flip pairs shown; the rest are summarised in one line.
TOP_FLIPS = 10


@dataclass(frozen=True)
class ClassRows:
    """The classes shown (largest absolute change first, then by name) and a line for the rest."""

    shown: tuple[str, ...]
    rest: str | None


def _counts(c: ClassChange) -> str:
    if not c.total:
        return signed(c.change, 1)
    return f"{signed(c.change, 1)} ({c.variant_correct}/{c.total}, was {c.baseline_correct}/{c.total})"


def class_rows(
    variants: Sequence[Variant], limit: int = TOP_CLASSES
) -> tuple[ClassRows, list[tuple[str, ...]]]:
    """The top ``limit`` classes by the largest absolute change in any variant, as table rows."""
    names = list(dict.fromkeys(c.name for v in variants for c in v.class_changes))
    worst = {n: max(abs(c.change) for v in variants for c in v.class_changes if c.name == n) for n in names}
    ranked = sorted(names, key=lambda n: (-worst[n], n))
    # up to ``limit`` classes, all are shown; else the changed ones among the first ``limit``
    shown = ranked if len(ranked) <= limit else [n for n in ranked[:limit] if worst[n] > 0] or ranked[:limit]
    rest = len(names) - len(shown)
    line = None
    if rest:
        moved = sum(1 for n in ranked[len(shown) :] if worst[n] > 0)
        biggest = max((worst[n] for n in ranked[len(shown) :]), default=0.0)
        more = "more classes" if shown else "classes"
        line = (
            f"{rest} {more}: {rest - moved} unchanged"
            + (f", {moved} changed by at most {biggest:.1f} points" if moved else "")
            + " (all of them in report.json)"
        )
    rows = []
    for name in shown:
        cells = [name]
        for v in variants:
            c = next((c for c in v.class_changes if c.name == name), None)
            cells.append("-" if c is None else _counts(c))
        rows.append(tuple(cells))
    return ClassRows(tuple(shown), line), rows


def flip_rows(v: Variant, limit: int = TOP_FLIPS) -> list[tuple[str, str, str]]:
    """(FP32's class, the variant's class, images) for the most frequent flips."""
    return [(f.before, f.after, str(f.count)) for f in v.flips[:limit]]


def rest_of_flips(v: Variant, limit: int = TOP_FLIPS) -> str | None:
    rest: Sequence[Flip] = v.flips[limit:]
    if not rest:
        return None
    images = sum(f.count for f in rest)
    return f"{len(rest)} more pairs, {images} images (all of them in report.json)"


def flipped_images(v: Variant) -> int:
    return sum(f.count for f in v.flips)
