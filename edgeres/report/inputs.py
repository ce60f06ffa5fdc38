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
import math
import os
from collections.abc import Mapping, Sequence
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
    except _WrongType as exc:
        raise EdgeresError(
            f"{kind} result file '{path}' is malformed: field '{exc.field}' should be {exc.expected}, "
            f"not {_json_type(exc.value)}"
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EdgeresError(
            f"{kind} result file '{path}' is malformed ({exc.__class__.__name__}: {exc})"
        ) from None


class _WrongType(Exception):
    def __init__(self, field: str, expected: str, value: Any) -> None:
        super().__init__(field)
        self.field, self.expected, self.value = field, expected, value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({json.dumps(value[:40])})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def _num(d: Mapping[str, Any], key: str, where: str, *, integer: bool = False) -> Any:
    """``d[key]`` as a number (None when absent or null); :class:`_WrongType` for anything else."""
    x = d.get(key)
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise _WrongType(f"{where}{key}", "an integer" if integer else "a number", x)
    if integer and not float(x).is_integer():
        raise _WrongType(f"{where}{key}", "an integer", x)
    return int(x) if integer else float(x)


def _text(d: Mapping[str, Any], key: str, where: str) -> str | None:
    x = d.get(key)
    if x is None:
        return None
    if not isinstance(x, str):
        raise _WrongType(f"{where}{key}", "a string", x)
    return x


def _required_text(d: Mapping[str, Any], key: str, where: str) -> str:
    x = _text(d, key, where)
    if x is None:
        raise _WrongType(f"{where}{key}", "a string", None)
    return x


def _obj(d: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    x = d.get(key)
    if x is None:
        return {}
    if not isinstance(x, dict):
        raise _WrongType(f"{where}{key}", "an object", x)
    return x


def _list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    x = d.get(key)
    if x is None:
        return []
    if not isinstance(x, list):
        raise _WrongType(f"{where}{key}", "a list", x)
    return x


def _texts(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = _list(d, key, where)
    for i, x in enumerate(items):
        if not isinstance(x, str):
            raise _WrongType(f"{where}{key}[{i}]", "a string", x)
    return tuple(items)


def _accuracy(result: Mapping[str, Any], source: str, where: str, **extra: Any) -> Accuracy:
    per_class = []
    for name, c in _obj(result, "per_class", where).items():
        if not isinstance(c, dict):
            raise _WrongType(f"{where}per_class.{name}", "an object", c)
        at = f"{where}per_class.{name}."
        per_class.append(
            ClassAccuracy(str(name), _num(c, "correct", at, integer=True), _num(c, "total", at, integer=True))
        )
    labelled, evaluated = (_num(result, k, where, integer=True) for k in ("num_labelled", "num_images"))
    images = labelled or evaluated
    return Accuracy(
        top1=_num(result, "top1", where),
        top5=_num(result, "top5", where),
        images=images or 0,
        source=source,
        per_class=tuple(per_class),
        **extra,
    )


def _eval(data: Mapping[str, Any], path: Path) -> Loaded:
    facts = []
    ref = data.get("reference")
    extra: dict[str, Any] = {}
    if ref is not None and not isinstance(ref, dict):
        raise _WrongType("reference", "an object", ref)
    if isinstance(ref, dict):
        if not isinstance(ref.get("result"), dict):
            raise _WrongType("reference.result", "an object", ref.get("result"))
        ref_model = _required_text(ref, "model", "reference.")
        ref_acc = _accuracy(ref["result"], str(path), "reference.result.")
        extra = {
            "reference": ref_model,
            "reference_top1": ref_acc.top1,
            "reference_per_class": ref_acc.per_class,
            "agreement": _num(ref, "agreement", "reference."),
        }
        facts.append(
            Fact(
                ref_model,
                path,
                "reference",
                precision=_text(ref, "precision", "reference."),
                backend=_text(ref, "backend", "reference."),
                size_bytes=_num(ref, "size_bytes", "reference.", integer=True),
                accuracy=ref_acc,
            )
        )
    main = Fact(
        _required_text(data, "model", ""),
        path,
        "eval",
        precision=_text(data, "precision", ""),
        backend=_text(data, "backend", ""),
        size_bytes=_num(data, "size_bytes", "", integer=True),
        accuracy=_accuracy(data["result"], str(path), "result.", **extra),
    )
    return Loaded(Source(str(path), "eval"), (main, *facts))


def _bench(data: Mapping[str, Any], path: Path) -> Loaded:
    facts = []
    for i, r in enumerate(data["results"]):
        at = f"results[{i}]."
        if not isinstance(r, dict):
            raise _WrongType(f"results[{i}]", "an object", r)
        batch = _num(r, "batch", at, integer=True)
        if batch is None:
            raise _WrongType(f"{at}batch", "an integer", None)
        row = Latency(
            batch=batch,
            backend=_text(r, "backend", at) or "?",
            device=_text(r, "device", at) or "?",
            mean_ms=_num(r, "mean_ms", at),
            median_ms=_num(r, "median_ms", at),
            p99_ms=_num(r, "p99_ms", at),
            throughput=_num(r, "throughput", at),
            cv=_num(r, "cv", at),
            noisy=bool(r.get("noisy")),
            iterations=_num(r, "iterations", at, integer=True) or 0,
            compute_mean_ms=_num(r, "compute_mean_ms", at),
            error=_text(r, "error", at),
        )
        facts.append(
            Fact(
                _required_text(r, "model", at),
                path,
                "bench",
                bench_precision=_text(r, "precision", at),
                backend=row.backend,
                latency=row,
            )
        )
    return Loaded(
        Source(str(path), "bench"), tuple(facts), environment=_environment(_obj(data, "environment", ""))
    )


def _environment(env: Mapping[str, Any]) -> Environment:
    at = "environment."
    gpus = tuple(
        f"{d.get('name', '?')} (sm {d.get('compute_capability', '?')}, {d.get('memory_gib', '?')} GiB)"
        if isinstance(d, dict)
        else str(d)
        for d in _list(env, "cuda_devices", at)
    )
    jetson = _obj(env, "jetson", at)
    if jetson:
        gpus += tuple(f"Jetson {k}: {v}" for k, v in jetson.items())
    libraries = tuple((str(k), str(v)) for k, v in _obj(env, "libraries", at).items() if v)
    return Environment(
        cpu_model=_text(env, "cpu_model", at),
        cpu_count=_num(env, "cpu_count", at, integer=True),
        cpu_features=_texts(env, "cpu_features", at),
        gpus=gpus,
        libraries=libraries,
        python=_text(env, "python", at),
        platform=_text(env, "platform", at),
        threads=_num(env, "threads", at, integer=True),
        providers=_texts(env, "onnxruntime_providers", at),
    )


def _quantize(data: Mapping[str, Any], path: Path) -> Loaded:
    fp32 = _required_text(data, "fp32_onnx", "")
    images = _num(data, "eval_images", "", integer=True) or 0
    fp32_top1 = _num(data, "fp32_top1", "")
    fp32_acc = None
    if fp32_top1 is not None:
        fp32_acc = Accuracy(fp32_top1, _num(data, "fp32_top5", ""), images, str(path))
    facts = [Fact(fp32, path, "quantize", precision="fp32", accuracy=fp32_acc)]
    for i, t in enumerate(data["targets"]):
        at = f"targets[{i}]."
        if not isinstance(t, dict):
            raise _WrongType(f"targets[{i}]", "an object", t)
        acc: Accuracy | None = None
        top1 = _num(t, "top1", at)
        if top1 is not None:
            per_class = []
            for n, ct in _obj(t, "per_class", at).items():
                if not (isinstance(ct, list) and len(ct) == 2 and all(isinstance(v, int) for v in ct)):
                    raise _WrongType(f"{at}per_class.{n}", "a pair of integers [correct, total]", ct)
                per_class.append(ClassAccuracy(str(n), ct[0], ct[1]))
            acc = Accuracy(
                top1=top1,
                top5=_num(t, "top5", at),
                images=images,
                source=str(path),
                per_class=tuple(per_class),
                reference=fp32,
                reference_top1=fp32_top1,
                agreement=_num(t, "agreement", at),
                drop=_num(t, "drop", at),
            )
        sensitivity = _obj(t, "sensitivity", at)
        sens = sorted(
            ((str(k), _num(sensitivity, k, f"{at}sensitivity.")) for k in sensitivity), key=lambda kv: -kv[1]
        )
        facts.append(
            Fact(
                _required_text(t, "path", at),
                path,
                "quantize",
                precision="int8",
                target=_required_text(t, "target", at),
                accuracy=acc,
                sensitivity=tuple(sens),
                kept_float=_texts(t, "excluded_nodes", at),
            )
        )
    arch = _text(_obj(data, "meta", ""), "arch", "meta.")
    return Loaded(Source(str(path), "quantize"), tuple(facts), arch=arch)


_PARSERS = {"eval": _eval, "bench": _bench, "quantize": _quantize}
