"""Group facts by variant: the same model file, named by different files, in one precision.

A model path is matched by its resolved path when the file is found (beside the JSON
that names it, as given from the current folder, or by its file name beside the JSON),
else by its file name. The
precision is what the files state (eval, quantize), else what the model file holds
(:func:`edgeres.precision.model_precision`), else a guess from the name.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeres.report.inputs import Fact

__all__ = ["Group", "file_precision", "group_facts", "label_groups", "locate"]

log = logging.getLogger(__name__)

#: Display order of the precisions: the baseline first.
ORDER = ("fp32", "fp16", "int8+fp16", "int8")
_FILE_PRECISION_SUFFIXES = {".onnx", ".engine", ".plan", ".trt"}


@dataclass(frozen=True)
class Group:
    """The facts about one variant; ``path`` is the model file when it was found."""

    key: str
    model: str
    precision: str
    path: Path | None
    facts: tuple[Fact, ...]

    def of_kind(self, *kinds: str) -> list[Fact]:
        return [f for f in self.facts if f.kind in kinds]

    @property
    def target(self) -> str | None:
        return next((f.target for f in self.facts if f.target), None)

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.backend for f in self.facts if f.backend))


def locate(model: str, origin: Path) -> Path | None:
    """The model file a JSON at ``origin`` names, or None when it is not found.

    A relative path is looked for beside the JSON first (edgeres pipeline names its files
    relative to its folder, so a copied folder finds its own), then from the current
    folder; an absolute one as given. Last, a file of that name beside the JSON.
    """
    p = Path(model)
    candidates = [p] if p.is_absolute() else [origin.parent / p, p]
    candidates.append(origin.parent / p.name)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    return None


def _name_guess(name: str) -> str | None:
    n = name.lower()
    int8 = ".int8" in n or "int8." in n
    fp16 = ".fp16" in n or "fp16." in n
    return "int8+fp16" if int8 and fp16 else "int8" if int8 else "fp16" if fp16 else None


def file_precision(path: Path | None, name: str, facts: Sequence[Fact]) -> str:
    """Stated precision > the model file's contents > a non-fp32 bench row > the file name > fp32."""
    stated = [f.precision for f in facts if f.precision]
    if stated:
        return Counter(stated).most_common(1)[0][0]
    if path is not None and path.suffix.lower() in _FILE_PRECISION_SUFFIXES:
        try:
            from edgeres.precision import model_precision

            return model_precision(path)
        except Exception as exc:  # an unreadable model must not stop the report
            log.debug("precision of %s not read: %s", path, exc)
    benched = [f.bench_precision for f in facts if f.bench_precision and f.bench_precision != "fp32"]
    return benched[0] if benched else _name_guess(name) or "fp32"


def group_facts(facts: Sequence[Fact]) -> list[Group]:
    """One group per (model file, precision), in the order the files were given."""
    located = {id(f): locate(f.model, f.origin) for f in facts}
    by_file: dict[str, list[Fact]] = {}
    names: dict[str, set[str]] = {}  # file name -> keys of located files with that name
    for f in facts:
        path = located[id(f)]
        if path is not None:
            by_file.setdefault(str(path), []).append(f)
            names.setdefault(path.name, set()).add(str(path))
    for f in facts:
        if located[id(f)] is None:
            name = Path(f.model).name
            matches = names.get(name, set())
            key = next(iter(matches)) if len(matches) == 1 else f"name:{name}"
            by_file.setdefault(key, []).append(f)
    groups: list[Group] = []
    for key, fs in by_file.items():
        path = None if key.startswith("name:") else Path(key)
        model = fs[0].model
        precision = file_precision(path, Path(model).name, fs)
        torch_rows: dict[str, list[Fact]] = {}
        rest = []
        for f in fs:  # torch benches run one checkpoint in the precision asked for
            if (
                f.kind == "bench"
                and f.backend == "torch"
                and f.bench_precision
                and f.bench_precision != precision
            ):
                torch_rows.setdefault(f.bench_precision, []).append(f)
            else:
                rest.append(f)
        groups.append(Group(f"{key}|{precision}", model, precision, path, tuple(rest)))
        groups += [Group(f"{key}|{p}", model, p, path, tuple(rows)) for p, rows in torch_rows.items()]
    return groups


def sort_key(group: Group) -> tuple[int, str]:
    rank = ORDER.index(group.precision) if group.precision in ORDER else len(ORDER)
    return rank, group.model


def label_groups(groups: Sequence[Group], baseline: Group | None) -> dict[str, str]:
    """A short label per group: the precision, qualified by target, backend or file when shared."""
    count = Counter(g.precision for g in groups)
    labels: dict[str, str] = {}
    for g in groups:
        label = g.precision.upper()
        if count[g.precision] > 1 and g is not baseline:
            qualifier = g.target or _only(g.backends) or Path(g.model).name
            label = f"{label} {qualifier}"
        labels[g.key] = label
    clashes = Counter(labels.values())
    for g in groups:
        if clashes[labels[g.key]] > 1 and g is not baseline:
            labels[g.key] = f"{g.precision.upper()} {Path(g.model).name}"
    clashes = Counter(labels.values())
    for g in groups:  # same file name in two folders: fall back to the path as written
        if clashes[labels[g.key]] > 1 and g is not baseline:
            labels[g.key] = f"{g.precision.upper()} {os.path.normpath(g.model)}"
    return labels


def _only(items: tuple[str, ...]) -> str | None:
    return items[0] if len(items) == 1 else None
