"""Combine the facts into variants: pick the baseline, then drops, agreement and latency ratios.

The baseline is an FP32 variant (the one with latency and accuracy, named most often as
a reference). A latency ratio is a variant's median over FP32's median at the same batch,
backend and device; a drop is FP32's top-1 minus the variant's, in points, on the same
images when a file measured both (eval --compare, quantize --eval).

A row whose time means little gets a caveat and no ratio: FP16 timed on a CPU, and an INT8
model quantized for TensorRT's layout timed on a CPU (or for OpenVINO's timed on ONNX
Runtime). Results of different architectures are refused: a report compares the variants of
one model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from edgeres.bench.compare import FP16_ON_CPU, OPENVINO_LAYOUT_ON_ORT, TENSORRT_LAYOUT_ON_CPU
from edgeres.errors import UsageError
from edgeres.report.data import (
    Accuracy,
    ClassChange,
    Environment,
    Flip,
    Latency,
    PlaceAccuracy,
    ReportData,
    Variant,
)
from edgeres.report.inputs import Fact, Loaded
from edgeres.report.variants import Group, group_facts, label_groups, locate, sort_key
from edgeres.runners.registry import owner_of

__all__ = ["FP16_ON_CPU", "TENSORRT_LAYOUT_ON_CPU", "caveat", "combine"]


_KIND_RANK = {"eval": 0, "quantize": 1, "reference": 2}


def combine(loaded: Sequence[Loaded], *, title: str | None = None) -> ReportData:
    facts = [f for item in loaded for f in item.facts]
    notes: list[str] = []
    groups = sorted(group_facts(facts), key=sort_key)
    _refuse_mixed_models(groups)
    baseline = _pick_baseline(groups, facts)
    groups.sort(key=lambda g: g is not baseline)  # stable: the baseline first, then by precision
    labels = label_groups(groups, baseline)
    by_key = {g.key: g for g in groups}
    variants = [_variant(g, labels[g.key], g is baseline, notes) for g in groups]
    if baseline is None:
        notes.append("no FP32 variant among the results: no drops or latency ratios")
    else:
        variants = _compare(variants, by_key, notes)
    notes += _missing(variants)
    notes += dict.fromkeys(c for item in loaded for c in item.caveats)  # each once, in order
    return ReportData(
        title=title or _default_title(loaded, variants),
        variants=tuple(variants),
        sources=tuple(item.source for item in loaded),
        environment=_environment(loaded, notes),
        notes=tuple(notes),
        provenance=_provenance(loaded),
    )


def _arch(g: Group) -> str | None:
    """The architecture the results state for the group, else the one its ONNX file's metadata names."""
    stated = next((f.arch for f in g.facts if f.arch), None)
    if stated is not None or g.path is None or g.path.suffix.lower() != ".onnx":
        return stated
    try:
        from edgeres.export.onnx_meta import read_onnx_meta

        return read_onnx_meta(g.path).arch
    except Exception:  # a model without edgeres metadata says nothing here
        return None


def _refuse_mixed_models(groups: Sequence[Group]) -> None:
    archs: dict[str, list[str]] = {}
    for g in groups:
        arch = _arch(g)
        if arch is not None:
            archs.setdefault(arch, []).append(Path(g.model).name)
    if len(archs) > 1:
        found = "; ".join(f"{a}: {', '.join(dict.fromkeys(models))}" for a, models in archs.items())
        raise UsageError(
            f"the results hold different models ({found}); a report compares the variants of one "
            "model: run edgeres report once per model"
        )


def caveat(precision: str, target: str | None, row: Latency) -> str | None:
    """Why ``row``'s time means little, or None: the bench file's own caveat first."""
    if row.caveat:
        return row.caveat
    if row.device != "cpu":
        return None
    if "fp16" in precision:
        return FP16_ON_CPU
    if precision.startswith("int8") and target == "tensorrt":
        return TENSORRT_LAYOUT_ON_CPU
    if precision.startswith("int8") and target == "openvino" and row.backend == "onnxruntime":
        return OPENVINO_LAYOUT_ON_ORT
    return None


def _provenance(loaded: Sequence[Loaded]) -> tuple[tuple[str, str], ...]:
    import datetime
    import platform

    from edgeres.version import __version__

    pairs: list[tuple[str, str]] = []
    for item in loaded:
        if item.calibration and not any(k == "calibration" for k, _ in pairs):
            pairs += item.calibration
    if not pairs:
        pairs.append(("calibration", "not recorded: no quantize result among the inputs"))
    envs = [item.environment for item in loaded if item.environment is not None]
    threads = envs[0].threads if envs else None
    pairs.append(("threads used", str(threads) if threads else "backend default (all cores)"))
    pairs.append(("report made by", f"edgeres {__version__}"))
    pairs.append(("report made on", f"{platform.node() or 'unknown host'}"))
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    pairs.append(("report date", when))
    return tuple(pairs)


def _pick_baseline(groups: Sequence[Group], facts: Sequence[Fact]) -> Group | None:
    fp32 = [g for g in groups if g.precision == "fp32"]
    if not fp32:
        return None
    referenced = [f.accuracy.reference for f in facts if f.accuracy and f.accuracy.reference]

    def score(g: Group) -> tuple[int, int, int, int]:
        named = sum(1 for r in referenced if _same_file(r, g, facts))
        return (
            int(any(f.latency for f in g.facts)),
            int(any(f.accuracy for f in g.facts)),
            named,
            int(g.path is not None and g.path.suffix == ".onnx"),
        )

    return max(fp32, key=score)  # max keeps the first of equals: the order the files came in


def _same_file(model: str, g: Group, facts: Sequence[Fact]) -> bool:
    origins = {f.origin for f in facts if f.accuracy and f.accuracy.reference == model}
    for origin in origins:
        path = locate(model, origin)
        if path is not None:
            return g.path == path
    return Path(model).name == Path(g.model).name


def _where(f: Fact) -> str:
    return f"{f.backend}/{f.device or 'cpu'}"


def _places(accs: Sequence[Fact]) -> tuple[PlaceAccuracy, ...]:
    """The evaluations on other places than the headline one (``accs[0]``), the first of each place."""
    if not accs or accs[0].backend is None:
        return ()
    places: dict[str, PlaceAccuracy] = {}
    for f in accs[1:]:
        where = _where(f)
        if f.kind == "eval" and f.backend is not None and f.accuracy and where != _where(accs[0]):
            places.setdefault(where, PlaceAccuracy(where, f.accuracy))
    return tuple(places.values())


def _variant(g: Group, label: str, baseline: bool, notes: list[str]) -> Variant:
    accs = [f for f in g.facts if f.accuracy is not None]
    # the headline accuracy: an eval first, on the file's own backend (ONNX Runtime for an ONNX
    # file, not OpenVINO), on the most images
    owner = owner_of(g.path or g.model)
    accs.sort(
        key=lambda f: (
            _KIND_RANK.get(f.kind, 3),
            f.backend is not None and f.backend != owner,
            -(f.accuracy.images if f.accuracy else 0),
        )
    )
    accuracy = accs[0].accuracy if accs else None
    sizes = [f.size_bytes for f in g.facts if f.size_bytes is not None]
    size = sizes[0] if sizes else (os.path.getsize(g.path) if g.path is not None else None)
    rows: dict[tuple[int, str, str], Latency] = {}
    for f in g.facts:
        if f.latency is not None:
            key = (f.latency.batch, f.latency.backend, f.latency.device)
            if key in rows:
                notes.append(
                    f"{label}: batch {key[0]} on {key[1]}/{key[2]} measured twice; the last is shown"
                )
            rows[key] = replace(f.latency, caveat=caveat(g.precision, g.target, f.latency))
    sens = next((f for f in g.facts if f.sensitivity or f.kept_float), None)
    backends = g.backends
    return Variant(
        key=g.key,
        label=label,
        model=g.model,
        precision=g.precision,
        baseline=baseline,
        target=g.target,
        backend=", ".join(backends) if backends else None,
        size_bytes=size,
        accuracy=accuracy,
        latency=tuple(sorted(rows.values(), key=lambda r: (r.backend, r.device, r.batch))),
        sensitivity=sens.sensitivity if sens else (),
        kept_float=sens.kept_float if sens else (),
        accuracy_on=_places(accs),
    )


def _compare(variants: list[Variant], by_key: dict[str, Group], notes: list[str]) -> list[Variant]:
    base = next(v for v in variants if v.baseline)
    fp32_rows: dict[tuple[int, str], float] = {}
    for v in sorted((v for v in variants if v.precision == "fp32"), key=lambda v: not v.baseline):
        for row in v.latency:
            if row.ok and row.headline_ms:
                fp32_rows.setdefault((row.batch, row.where), row.headline_ms)
    out = []
    for v in variants:
        latency = tuple(
            replace(row, ratio=row.headline_ms / fp32_rows[(row.batch, row.where)])
            if row.ok
            and row.headline_ms is not None
            and row.caveat is None
            and (row.batch, row.where) in fp32_rows
            else row
            for row in v.latency
        )
        v = replace(v, latency=latency)
        if not v.baseline and v.accuracy is not None and v.accuracy.top1 is not None:
            v = _accuracy_change(v, base, by_key, notes)
        if not v.baseline:
            v = replace(v, accuracy_on=tuple(_place_change(p, by_key) for p in v.accuracy_on))
        out.append(v)
    return out


def _accuracy_change(v: Variant, base: Variant, by_key: dict[str, Group], notes: list[str]) -> Variant:
    acc = v.accuracy
    assert acc is not None and acc.top1 is not None
    ref_is_fp32 = acc.reference is not None and _reference_precision(acc, by_key) == "fp32"
    if acc.drop is not None and ref_is_fp32:
        drop: float | None = acc.drop
    elif ref_is_fp32 and acc.reference_top1 is not None:
        drop = 100.0 * (acc.reference_top1 - acc.top1)
    elif base.accuracy is not None and base.accuracy.top1 is not None:
        drop = 100.0 * (base.accuracy.top1 - acc.top1)
        if base.accuracy.images != acc.images:
            notes.append(
                f"{v.label} and {base.label} were evaluated on different images "
                f"({acc.images} and {base.accuracy.images}): their drop compares different sets"
            )
    else:
        drop = None
    if ref_is_fp32 and base.accuracy is not None and base.accuracy.images != acc.images:
        notes.append(
            f"{v.label}: top-1 on {acc.images} images, {base.label}'s on {base.accuracy.images}; "
            "its drop and agreement compare it with FP32 on the same images"
        )
    changes: tuple[ClassChange, ...] = ()
    if ref_is_fp32 and acc.reference_per_class:
        changes = _class_changes(acc.reference_per_class, acc)
    elif base.accuracy is not None and base.accuracy.images == acc.images:
        changes = _class_changes(base.accuracy.per_class, acc)
    flips = _flips(v, by_key) if ref_is_fp32 else ()
    return replace(
        v,
        drop=drop,
        agreement=acc.agreement if ref_is_fp32 else None,
        class_changes=changes,
        flips=flips,
    )


def _place_change(p: PlaceAccuracy, by_key: dict[str, Group]) -> PlaceAccuracy:
    """The drop and agreement of an evaluation elsewhere: against the FP32 it names, measured there."""
    acc = p.accuracy
    if acc.top1 is None or acc.reference_top1 is None or _reference_precision(acc, by_key) != "fp32":
        return p
    return replace(p, drop=100.0 * (acc.reference_top1 - acc.top1), agreement=acc.agreement)


def _flips(v: Variant, by_key: dict[str, Group]) -> tuple[Flip, ...]:
    """The flips recorded by the file that gave ``v`` its accuracy."""
    assert v.accuracy is not None
    source = Path(v.accuracy.source)
    for f in by_key[v.key].facts:
        if f.flips and f.origin == source:
            return tuple(Flip(b, a, n) for b, a, n in f.flips)
    return ()


def _reference_precision(acc: Accuracy, by_key: dict[str, Group]) -> str | None:
    origin = Path(acc.source)
    path = locate(acc.reference or "", origin)
    name = Path(acc.reference or "").name
    for g in by_key.values():
        same = (path is not None and g.path == path) or (path is None and Path(g.model).name == name)
        if same and any(f.origin == origin for f in g.facts):
            return g.precision
    return None


def _class_changes(base: Sequence, acc: Accuracy) -> tuple[ClassChange, ...]:
    ref = {c.name: c for c in base}
    out = []
    for c in acc.per_class:
        b = ref.get(c.name)
        if b is not None and b.total == c.total and c.accuracy is not None and b.accuracy is not None:
            out.append(ClassChange(c.name, b.accuracy, c.accuracy, c.total, b.correct, c.correct))
    return tuple(out)


def _missing(variants: Sequence[Variant]) -> list[str]:
    notes = []
    for v in variants:
        if v.accuracy is None:
            notes.append(f"{v.label} ({v.model}): no accuracy; run edgeres eval --json on it")
        if not any(row.ok for row in v.latency):
            notes.append(f"{v.label} ({v.model}): no latency; run edgeres bench --json on it")
        if v.size_bytes is None:
            notes.append(f"{v.label} ({v.model}): size unknown, the model file was not found")
        for row in v.latency:
            if row.error:
                notes.append(f"{v.label} at batch {row.batch} on {row.where} did not run: {row.error}")
            elif row.noisy:
                cv = f"cv {row.cv:.0%}" if row.cv is not None else "high cv"
                notes.append(
                    f"{v.label} at batch {row.batch} on {row.where} is noisy ({cv}): rerun on a quiet machine"
                )
    return notes


def _environment(loaded: Sequence[Loaded], notes: list[str]) -> Environment | None:
    envs = [item.environment for item in loaded if item.environment is not None]
    machines = {(e.cpu_model, e.gpus) for e in envs}
    if len(machines) > 1:
        notes.append("the bench files come from different machines; the environment shown is the first one's")
    return envs[0] if envs else None


def _default_title(loaded: Sequence[Loaded], variants: Sequence[Variant]) -> str:
    arch = next((item.arch for item in loaded if item.arch), None)
    if arch is None and variants:
        arch = Path(variants[0].model).name.split(".")[0]
    precisions = " / ".join(dict.fromkeys(v.precision.upper() for v in variants))
    return f"{arch}: {precisions}" if arch else f"edgeres report: {precisions}"
