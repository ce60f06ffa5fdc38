"""The result files edgeres writes: one typed record per kind, with one writer and one reader.

* ``edgeres.eval``: ``edgeres eval --json`` and the pipeline's ``eval_*.json``;
  :class:`EvalRecord`, :func:`write_eval` / :func:`read_eval`.
* ``edgeres.bench``: ``edgeres bench --json`` and the pipeline's ``bench.json``;
  :class:`BenchRecord`, :func:`write_bench` / :func:`read_bench`.
* ``edgeres.quantize``: ``edgeres quantize --json`` and the pipeline's ``quantize.json``;
  :class:`QuantizeRecord`, :func:`write_quantize` / :func:`read_quantize`.

Every file starts with ``kind`` and ``schema`` (see :mod:`edgeres.records.files`).
"""

from __future__ import annotations

from edgeres.records.bench import BenchEnvironment, BenchRecord, Gpu, read_bench, write_bench
from edgeres.records.eval import ClassScore, EvalRecord, Reference, Scores, read_eval, write_eval
from edgeres.records.fields import FieldError
from edgeres.records.files import load_json, parse, read_record, write_record
from edgeres.records.quantize import QuantizeRecord, TargetRecord, read_quantize, write_quantize

__all__ = [
    "BenchEnvironment",
    "BenchRecord",
    "ClassScore",
    "EvalRecord",
    "FieldError",
    "Gpu",
    "QuantizeRecord",
    "Reference",
    "Scores",
    "TargetRecord",
    "load_json",
    "parse",
    "read_bench",
    "read_eval",
    "read_quantize",
    "read_record",
    "write_bench",
    "write_eval",
    "write_quantize",
    "write_record",
]
