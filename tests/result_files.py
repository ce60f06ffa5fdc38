"""Checks of result files written by the real writers: each read back through the report's reader
must fill every field the report uses, and write -> read must give the same typed record.

Shared by tests/report/test_result_files.py (the commands' files) and
tests/pipeline/test_result_files.py (the pipeline's).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from edgeres.records import read_bench, read_eval, read_quantize, write_bench, write_eval, write_quantize
from edgeres.report.inputs import Fact, Loaded, read_source

READERS = {"edgeres.eval": read_eval, "edgeres.bench": read_bench, "edgeres.quantize": read_quantize}
WRITERS = {"edgeres.eval": write_eval, "edgeres.bench": write_bench, "edgeres.quantize": write_quantize}

# The fields of the report's facts that a kind of file cannot fill: everything else must be filled.
# ``arch`` comes only from a quantize file; ``flips`` only from an eval file with a reference.
NOT_FROM = {
    "eval": {"bench_precision", "target", "latency", "sensitivity", "kept_float", "arch"},
    "reference": {"bench_precision", "target", "latency", "sensitivity", "kept_float", "arch", "flips"},
    "bench": {"precision", "target", "size_bytes", "accuracy", "sensitivity", "kept_float", "arch", "flips"},
    "quantize": {"bench_precision", "backend", "device", "size_bytes", "latency", "flips"},
}
_NO_REFERENCE = {"reference", "reference_top1", "reference_per_class", "agreement"}
ACCURACY_NOT_FROM = {
    "eval": {"drop"},
    "eval without reference": {"drop", *_NO_REFERENCE},
    "reference": {"drop", *_NO_REFERENCE},
    "quantize fp32": {"per_class", "reference", "reference_top1", "reference_per_class", "agreement", "drop"},
    "quantize int8": {"reference_per_class"},
}
#: Computed by the report (ratio to FP32), not read; an error only for a row that failed.
LATENCY_NOT_FROM = {"ratio", "error"}
#: Stated by a bench file for the rows that deserve one (FP16 or the tensorrt layout timed on a
#: CPU), computed by the report otherwise: filled or empty, depending on the row.
LATENCY_EITHER = {"caveat"}


def empty_fields(obj: Any) -> set[str]:
    """The dataclass fields of ``obj`` that are None or empty."""
    return {
        f.name
        for f in dataclasses.fields(obj)
        if getattr(obj, f.name) is None or getattr(obj, f.name) in ("", ())
    }


def machine_unfilled() -> frozenset[str]:
    """What this machine leaves empty in a bench file: the GPUs, the CPU's vector extensions."""
    from edgeres.sysinfo import collect

    info = collect()
    return frozenset(
        {"compute_mean_ms"}  # the GPU time of a TensorRT engine; ONNX Runtime has none
        | ({"gpus"} if not (info.cuda_devices or info.jetson) else set())
        | ({"cpu_features"} if not info.cpu_features else set())
    )


def round_trip(path: Path, tmp: Path) -> None:
    """The file read, written again by its writer and read again: the same record, the same JSON."""
    kind = json.loads(path.read_text())["kind"]
    record = READERS[kind](path)
    again = tmp / f"again_{path.name}"
    WRITERS[kind](again, record)
    assert READERS[kind](again) == record
    assert json.loads(again.read_text()) == json.loads(path.read_text())  # no field lost on the way


def check_eval(path: Path, *, reference: bool, unfilled: frozenset[str] = frozenset()) -> Loaded:
    """An eval file: its facts (and its reference's) have every field the report uses."""
    loaded = read_source(path)
    assert loaded is not None and loaded.source.kind == "eval"
    main = loaded.facts[0]
    # flips: none without a reference, none either when the two models agreed on every image
    agreed = not reference or (main.accuracy is not None and main.accuracy.agreement == 1.0)
    _check(main, "eval", unfilled | ({"flips"} if agreed else set()))
    assert main.accuracy is not None
    assert empty_fields(main.accuracy) == ACCURACY_NOT_FROM["eval" if reference else "eval without reference"]
    if reference:
        ref = loaded.facts[1]
        _check(ref, "reference", unfilled)
        assert ref.accuracy is not None and empty_fields(ref.accuracy) == ACCURACY_NOT_FROM["reference"]
    assert len(loaded.facts) == 1 + reference
    return loaded


def check_bench(path: Path, *, unfilled: frozenset[str] = frozenset()) -> Loaded:
    """A bench file: each row and the environment fill what the report shows.

    ``unfilled``: fields this run cannot fill (the GPU time without TensorRT, GPUs, CPU flags).
    """
    loaded = read_source(path)
    assert loaded is not None and loaded.source.kind == "bench" and loaded.facts
    for fact in loaded.facts:
        _check(fact, "bench", unfilled)
        assert fact.latency is not None
        empty = empty_fields(fact.latency) - LATENCY_EITHER
        assert empty == ((LATENCY_NOT_FROM | unfilled) & _names(fact.latency)) - LATENCY_EITHER
    assert loaded.environment is not None
    assert empty_fields(loaded.environment) == unfilled & _names(loaded.environment)
    return loaded


def check_quantize(path: Path, *, unfilled: frozenset[str] = frozenset()) -> Loaded:
    """A quantize file: the FP32 model and each INT8 one, with their accuracy; the architecture.

    ``unfilled``: fields this run cannot fill (sensitivity and kept_float without --max-drop).
    """
    loaded = read_source(path)
    assert loaded is not None and loaded.source.kind == "quantize" and loaded.arch
    fp32, *int8 = loaded.facts
    assert int8
    _check(fp32, "quantize", {"target", "sensitivity", "kept_float"})
    assert fp32.accuracy is not None and empty_fields(fp32.accuracy) == ACCURACY_NOT_FROM["quantize fp32"]
    for fact in int8:
        _check(fact, "quantize", unfilled)
        assert fact.accuracy is not None and empty_fields(fact.accuracy) == ACCURACY_NOT_FROM["quantize int8"]
    return loaded


def _names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def _check(fact: Fact, kind: str, unfilled: frozenset[str] | set[str]) -> None:
    expected = (NOT_FROM[kind] | set(unfilled)) & _names(fact)
    assert empty_fields(fact) == expected, (kind, fact)
