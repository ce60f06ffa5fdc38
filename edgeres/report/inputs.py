"""Read the result files: find them, tell their kind by their keys, turn them into facts.

Three kinds of JSON are read, each written by an edgeres command:

* ``eval``: ``edgeres eval --json`` (``model``, ``result``, optionally ``reference``);
* ``bench``: ``edgeres bench --json`` (``environment``, ``results``);
* ``quantize``: ``edgeres quantize --json`` (``fp32_onnx``, ``targets``).

Each becomes a list of :class:`Fact`: one thing a file says about one model file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeres.errors import EdgeresError, UsageError
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
    target: str | None = None
    size_bytes: int | None = None
    accuracy: Accuracy | None = None
    latency: Latency | None = None
    sensitivity: tuple[tuple[str, float], ...] = ()
    kept_float: tuple[str, ...] = ()


@dataclass(frozen=True)
class Loaded:
    source: Source
    facts: tuple[Fact, ...]
    environment: Environment | None = None
    arch: str | None = None


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
    """Read and parse one file; None for a folder's file that is not a result (logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeresError(f"cannot read result file '{path}': {exc.__class__.__name__}") from None
    except json.JSONDecodeError as exc:
        raise EdgeresError(
            f"result file '{path}' is not valid JSON (line {exc.lineno}): corrupt or cut short"
        ) from None
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
    try:
        return _PARSERS[kind](data, path)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EdgeresError(
            f"{kind} result file '{path}' is malformed ({exc.__class__.__name__}: {exc})"
        ) from None


def _accuracy(result: Mapping[str, Any], source: str, **extra: Any) -> Accuracy:
    per_class = tuple(
        ClassAccuracy(str(name), int(c["correct"]), int(c["total"]))
        for name, c in (result.get("per_class") or {}).items()
    )
    return Accuracy(
        top1=_float(result.get("top1")),
        top5=_float(result.get("top5")),
        images=int(result.get("num_labelled") or result.get("num_images") or 0),
        source=source,
        per_class=per_class,
        **extra,
    )


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def _size(x: Any) -> int | None:
    return None if x is None else int(x)


def _eval(data: Mapping[str, Any], path: Path) -> Loaded:
    facts = []
    ref = data.get("reference")
    extra: dict[str, Any] = {}
    if isinstance(ref, dict):
        ref_acc = _accuracy(ref["result"], str(path))
        extra = {
            "reference": str(ref["model"]),
            "reference_top1": ref_acc.top1,
            "reference_per_class": ref_acc.per_class,
            "agreement": _float(ref.get("agreement")),
        }
        facts.append(
            Fact(
                str(ref["model"]),
                path,
                "reference",
                precision=ref.get("precision"),
                backend=ref.get("backend"),
                size_bytes=_size(ref.get("size_bytes")),
                accuracy=ref_acc,
            )
        )
    main = Fact(
        str(data["model"]),
        path,
        "eval",
        precision=data.get("precision"),
        backend=data.get("backend"),
        size_bytes=_size(data.get("size_bytes")),
        accuracy=_accuracy(data["result"], str(path), **extra),
    )
    return Loaded(Source(str(path), "eval"), (main, *facts))


def _bench(data: Mapping[str, Any], path: Path) -> Loaded:
    facts = []
    for r in data["results"]:
        row = Latency(
            batch=int(r["batch"]),
            backend=str(r.get("backend") or "?"),
            device=str(r.get("device") or "?"),
            mean_ms=_float(r.get("mean_ms")),
            median_ms=_float(r.get("median_ms")),
            p99_ms=_float(r.get("p99_ms")),
            throughput=_float(r.get("throughput")),
            cv=_float(r.get("cv")),
            noisy=bool(r.get("noisy")),
            iterations=int(r.get("iterations") or 0),
            compute_mean_ms=_float(r.get("compute_mean_ms")),
            error=r.get("error"),
        )
        facts.append(
            Fact(
                str(r["model"]),
                path,
                "bench",
                bench_precision=r.get("precision"),
                backend=row.backend,
                latency=row,
            )
        )
    return Loaded(
        Source(str(path), "bench"), tuple(facts), environment=_environment(data.get("environment") or {})
    )


def _environment(env: Mapping[str, Any]) -> Environment:
    gpus = tuple(
        f"{d.get('name', '?')} (sm {d.get('compute_capability', '?')}, {d.get('memory_gib', '?')} GiB)"
        if isinstance(d, dict)
        else str(d)
        for d in env.get("cuda_devices") or ()
    )
    jetson = env.get("jetson") or {}
    if jetson:
        gpus += tuple(f"Jetson {k}: {v}" for k, v in jetson.items())
    libraries = tuple((str(k), str(v)) for k, v in (env.get("libraries") or {}).items() if v)
    return Environment(
        cpu_model=env.get("cpu_model"),
        cpu_count=env.get("cpu_count"),
        cpu_features=tuple(env.get("cpu_features") or ()),
        gpus=gpus,
        libraries=libraries,
        python=env.get("python"),
        platform=env.get("platform"),
        threads=env.get("threads"),
        providers=tuple(env.get("onnxruntime_providers") or ()),
    )


def _quantize(data: Mapping[str, Any], path: Path) -> Loaded:
    fp32 = str(data["fp32_onnx"])
    images = int(data.get("eval_images") or 0)
    fp32_acc = None
    if data.get("fp32_top1") is not None:
        fp32_acc = Accuracy(_float(data["fp32_top1"]), _float(data.get("fp32_top5")), images, str(path))
    facts = [Fact(fp32, path, "quantize", precision="fp32", accuracy=fp32_acc)]
    for t in data["targets"]:
        acc: Accuracy | None = None
        if t.get("top1") is not None:
            acc = Accuracy(
                top1=_float(t["top1"]),
                top5=_float(t.get("top5")),
                images=images,
                source=str(path),
                per_class=tuple(
                    ClassAccuracy(str(n), int(ct[0]), int(ct[1])) for n, ct in _items(t.get("per_class"))
                ),
                reference=fp32,
                reference_top1=_float(data.get("fp32_top1")),
                agreement=_float(t.get("agreement")),
                drop=_float(t.get("drop")),
            )
        sens = sorted(((str(k), float(v)) for k, v in _items(t.get("sensitivity"))), key=lambda kv: -kv[1])
        facts.append(
            Fact(
                str(t["path"]),
                path,
                "quantize",
                precision="int8",
                target=str(t["target"]),
                accuracy=acc,
                sensitivity=tuple(sens),
                kept_float=tuple(str(n) for n in t.get("excluded_nodes") or ()),
            )
        )
    arch = (data.get("meta") or {}).get("arch")
    return Loaded(Source(str(path), "quantize"), tuple(facts), arch=arch)


def _items(d: Any) -> Iterable[tuple[Any, Any]]:
    return d.items() if isinstance(d, dict) else ()


_PARSERS = {"eval": _eval, "bench": _bench, "quantize": _quantize}
