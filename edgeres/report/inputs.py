"""Read the result files: find them, read each by the kind it states, turn them into facts.

Three kinds are read, each written by an edgeres command (and by the pipeline) with ``--json``:
``edgeres.eval``, ``edgeres.bench`` and ``edgeres.quantize`` (see :mod:`edgeres.records`).
A file of an older edgeres, which did not state its kind, is told by its keys
(:func:`classify`) and read as the report always read it (:func:`_read_unmarked`).

Each becomes a list of :class:`Fact`: one thing a file says about one model file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeres.errors import EdgeresError, UsageError
from edgeres.records import (
    BenchEnvironment,
    BenchRecord,
    ClassScore,
    EvalRecord,
    QuantizeRecord,
    Scores,
    load_json,
    parse,
    read_bench,
    read_eval,
    read_quantize,
)
from edgeres.report.data import Accuracy, ClassAccuracy, Environment, Latency, Source

__all__ = ["Fact", "Loaded", "classify", "expand_sources", "read_source"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fact:
    """What one input file says about one model file.

    ``precision`` is stated by the file (eval, quantize); ``bench_precision`` is the
    bench row's, trusted only for the torch backend (older bench files say fp32 for
    every ONNX model).
    """

    model: str
    origin: Path
    kind: str  # eval, reference, quantize, bench
    precision: str | None = None
    bench_precision: str | None = None
    backend: str | None = None
    #: The device an eval ran on (cpu, cuda), with ``backend`` the place of its accuracy.
    device: str | None = None
    target: str | None = None
    size_bytes: int | None = None
    accuracy: Accuracy | None = None
    latency: Latency | None = None
    sensitivity: tuple[tuple[str, float], ...] = ()
    kept_float: tuple[str, ...] = ()
    #: The architecture the file states for this model (a quantize record's metadata), else None.
    arch: str | None = None
    #: FP32's predictions this model changed: (FP32's class, this model's class, images).
    flips: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True)
class Loaded:
    source: Source
    facts: tuple[Fact, ...]
    environment: Environment | None = None
    arch: str | None = None
    #: How the INT8 models were made (a quantize record): (name, value) pairs for the report.
    calibration: tuple[tuple[str, str], ...] = ()
    #: "MODEL: why its accuracy here differs from elsewhere", as eval and quantize files state it.
    caveats: tuple[str, ...] = ()


def expand_sources(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, bool]]:
    """Each file as given, and each folder's ``*.json``; with whether it was named explicitly."""
    out: list[tuple[Path, bool]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out += [(f, False) for f in sorted(p.glob("*.json")) if f.is_file()]
        elif p.is_file():
            out.append((p, True))
        else:
            raise UsageError(f"result file '{p}' does not exist")
    seen: set[Path] = set()
    unique = []
    for p, explicit in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((p, explicit))
    return unique


def classify(data: Any) -> str | None:
    """'eval', 'bench', 'quantize', 'report' (a report.json) or None, from the top-level keys."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("results"), list) and "environment" in data:
        return "bench"
    if "fp32_onnx" in data and isinstance(data.get("targets"), list):
        return "quantize"
    if "model" in data and isinstance(data.get("result"), dict) and "top1" in data["result"]:
        return "eval"
    if "variants" in data and "sources" in data:
        return "report"
    return None


def read_source(path: Path, *, explicit: bool = True) -> Loaded | None:
    """Read one file by the kind it states; None for a folder's file that is not a result (logged)."""
    data = load_json(path)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind is None:
        return _read_unmarked(data, path, explicit=explicit)
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        if not explicit:
            log.warning("skipped %s: it holds %r, not an edgeres eval, bench or quantize result", path, kind)
            return None
        raise EdgeresError(
            f"'{path}' holds {kind!r}, which is not an edgeres eval, bench or quantize result; "
            "give the files those commands write with --json, or upgrade edgeres if a newer one wrote it"
        )
    read, facts = reader
    return facts(read(path, data), path)


def _read_unmarked(data: Any, path: Path, *, explicit: bool) -> Loaded | None:
    """A file without ``kind`` (an older edgeres): its kind told by its keys, missing fields empty."""
    kind = classify(data)
    if kind is None or kind == "report":
        if not explicit:
            log.warning("skipped %s: not an edgeres eval, bench or quantize JSON", path)
            return None
        what = "a report written by edgeres report" if kind else "not recognised"
        raise EdgeresError(
            f"'{path}' is not an edgeres eval, bench or quantize JSON ({what}); "
            "give the files those commands write with --json"
        )
    if kind == "eval":
        return _eval(parse(EvalRecord, data, path, strict=False), path)
    if kind == "bench":
        return _bench(parse(BenchRecord, data, path, strict=False), path)
    return _quantize(parse(QuantizeRecord, data, path, strict=False), path)


def _accuracy(scores: Scores, source: str, **extra: Any) -> Accuracy:
    return Accuracy(
        top1=scores.top1,
        top5=scores.top5,
        images=scores.num_labelled or scores.num_images,
        source=source,
        per_class=_classes(scores.per_class),
        **extra,
    )


def _classes(per_class: Sequence[ClassScore]) -> tuple[ClassAccuracy, ...]:
    return tuple(ClassAccuracy(c.name, c.correct, c.total) for c in per_class)


def _eval(record: EvalRecord, path: Path) -> Loaded:
    facts = []
    extra: dict[str, Any] = {}
    ref = record.reference
    if ref is not None:
        ref_acc = _accuracy(ref.result, str(path))
        extra = {
            "reference": ref.model,
            "reference_top1": ref_acc.top1,
            "reference_per_class": ref_acc.per_class,
            "agreement": ref.agreement,
        }
        facts.append(
            Fact(
                ref.model,
                path,
                "reference",
                precision=ref.precision,
                backend=ref.backend,
                device=ref.device,
                size_bytes=ref.size_bytes,
                accuracy=ref_acc,
            )
        )
    main = Fact(
        record.model,
        path,
        "eval",
        precision=record.precision,
        backend=record.backend,
        device=record.device,
        size_bytes=record.size_bytes,
        accuracy=_accuracy(record.result, str(path), **extra),
        flips=ref.flips if ref is not None else (),
    )
    caveats = (f"{Path(record.model).name}: {record.caveat}",) if record.caveat else ()
    return Loaded(Source(str(path), "eval"), (main, *facts), caveats=caveats)


def _bench(record: BenchRecord, path: Path) -> Loaded:
    facts = []
    for r in record.results:
        row = Latency(
            batch=r.batch,
            backend=r.backend or "?",
            device=r.device or "?",
            mean_ms=r.mean_ms,
            median_ms=r.median_ms,
            p99_ms=r.p99_ms,
            throughput=r.throughput,
            cv=r.cv,
            noisy=r.noisy,
            iterations=r.iterations,
            compute_mean_ms=r.compute_mean_ms,
            error=r.error,
            caveat=getattr(r, "caveat", None) or None,  # stated by newer bench files
        )
        facts.append(
            Fact(
                r.model,
                path,
                "bench",
                bench_precision=r.precision or None,
                backend=row.backend,
                device=row.device,
                latency=row,
            )
        )
    return Loaded(Source(str(path), "bench"), tuple(facts), environment=_environment(record.environment))


def _environment(env: BenchEnvironment) -> Environment:
    gpus = tuple(
        f"{g.name or '?'} (sm {g.compute_capability or '?'}, {_or_unknown(g.memory_gib)} GiB)"
        for g in env.cuda_devices
    )
    gpus += tuple(f"Jetson {k}: {v}" for k, v in env.jetson)
    return Environment(
        cpu_model=env.cpu_model,
        cpu_count=env.cpu_count,
        cpu_features=env.cpu_features,
        gpus=gpus,
        libraries=tuple((k, v) for k, v in env.libraries if v),
        python=env.python,
        platform=env.platform,
        threads=env.threads,
        providers=env.onnxruntime_providers,
    )


def _or_unknown(x: float | None) -> str:
    return "?" if x is None else str(x)


def _quantize(record: QuantizeRecord, path: Path) -> Loaded:
    fp32, images, fp32_top1 = record.fp32_onnx, record.eval_images, record.fp32_top1
    fp32_acc = None
    if fp32_top1 is not None:
        fp32_acc = Accuracy(fp32_top1, record.fp32_top5, images, str(path))
    arch = record.arch
    facts = [Fact(fp32, path, "quantize", precision="fp32", accuracy=fp32_acc, arch=arch)]
    for t in record.targets:
        acc: Accuracy | None = None
        if t.top1 is not None:
            acc = Accuracy(
                top1=t.top1,
                top5=t.top5,
                images=images,
                source=str(path),
                per_class=_classes(t.per_class),
                reference=fp32,
                reference_top1=fp32_top1,
                agreement=t.agreement,
                drop=t.drop,
            )
        facts.append(
            Fact(
                t.path,
                path,
                "quantize",
                precision="int8",
                target=t.target,
                accuracy=acc,
                sensitivity=tuple(sorted(t.sensitivity, key=lambda kv: -kv[1])),
                kept_float=t.excluded_nodes,
                arch=arch,
            )
        )
    calibration = _calibration(record)
    caveats = tuple(f"{Path(t.path).name}: {t.caveat}" for t in record.targets if t.caveat)
    return Loaded(
        Source(str(path), "quantize"), tuple(facts), arch=arch, calibration=calibration, caveats=caveats
    )


def _calibration(record: QuantizeRecord) -> tuple[tuple[str, str], ...]:
    if not record.method:
        return ()
    images = f"{record.calib_images} images" if record.calib_images else "images not recorded"
    cache = f"cache {record.cache}" + (" (reused)" if record.reused_cache else "")
    targets = (
        ", ".join(
            t.target + (f" ({t.weight_bits}-bit weights)" if t.weight_bits != 8 else "")
            for t in record.targets
        )
        or "-"
    )
    pairs = [("calibration", f"{record.method}, {images}; {cache}"), ("quantize targets", targets)]
    corrected = [
        f"{t.target}: {t.bias_correction.layers} layers on {t.bias_correction.images} images, "
        f"mean |shift| {t.bias_correction.mean_abs_shift:.3g}"
        + (" (from the cache)" if t.bias_correction.reused else "")
        for t in record.targets
        if t.bias_correction is not None
    ]
    pairs.append(("bias correction", "; ".join(corrected) if corrected else "off"))
    rounded = [
        f"{t.target}: learned ({t.rounding.method}), {t.rounding.layers} layers on {t.rounding.images} "
        "images, "
        f"{100 * t.rounding.flipped:.1f}% of weights rounded the other way"
        + (
            f", layer output error {100 * t.rounding.error_reduction:.0f}% lower"
            if t.rounding.error_reduction is not None
            else ""
        )
        + (f" ({t.rounding.reused_layers} layers from the cache)" if t.rounding.reused_layers else "")
        for t in record.targets
        if t.rounding is not None
    ]
    pairs.append(("weight rounding", "; ".join(rounded) if rounded else "nearest"))
    if record.method_scores:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in record.method_scores)
        pairs.append(("calibration methods tried", scores))
    if record.selection_note:
        pairs.append(("quantize note", record.selection_note))
    return tuple(pairs)


_READERS: dict[str, tuple[Callable[[Path, Any], Any], Callable[[Any, Path], Loaded]]] = {
    EvalRecord.KIND: (read_eval, _eval),
    BenchRecord.KIND: (read_bench, _bench),
    QuantizeRecord.KIND: (read_quantize, _quantize),
}
