"""Prediction flips: which FP32 predictions another model changed, counted in evaluate and kept in
the eval record (old records without them stay readable)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgeres.errors import UsageError
from edgeres.evaluate import EvalResult, flips
from edgeres.records import EvalRecord, Reference, read_eval, write_eval

NAMES = ("cat", "dog", "owl")


def _result(preds: list[int], indices: list[int], names: tuple[str, ...] = NAMES) -> EvalResult:
    p = np.array(preds, np.int64)
    return EvalResult(
        len(p), None, None, {}, p, np.full(len(p), -1), indices=np.array(indices, np.int64), class_names=names
    )


def test_flips_count_each_changed_pair_most_frequent_first() -> None:
    fp32 = _result([2, 2, 0, 1, 2, 1, 0], [0, 1, 2, 3, 4, 5, 6])
    int8 = _result([0, 0, 0, 2, 2, 0, 1], [0, 1, 2, 3, 4, 5, 6])
    assert flips(int8, fp32) == [("owl", "cat", 2), ("cat", "dog", 1), ("dog", "cat", 1), ("dog", "owl", 1)]
    assert flips(fp32, fp32) == []


def test_flips_match_images_by_index_whatever_the_order() -> None:
    fp32 = _result([0, 1, 2], [7, 8, 9])
    int8 = _result([2, 1, 2], [9, 8, 7])  # image 7: cat -> owl
    assert flips(int8, fp32) == [("cat", "owl", 1)]
    with pytest.raises(UsageError, match="different images"):
        flips(_result([0], [1]), fp32)


def test_flips_name_classes_by_index_without_names() -> None:
    assert flips(_result([1], [0], ()), _result([0], [0], ())) == [("0", "1", 1)]


def _runner() -> SimpleNamespace:
    return SimpleNamespace(precision="fp32", name="onnxruntime", device="cpu")


def test_the_eval_record_counts_flips_against_its_reference(tmp_path: Path) -> None:
    fp32 = _result([0, 0, 1], [0, 1, 2])
    int8 = _result([1, 0, 1], [0, 1, 2])
    ref = Reference.measured("m.onnx", _runner(), fp32, agreement=2 / 3)  # type: ignore[arg-type]
    record = EvalRecord.measured("m.int8.onnx", _runner(), int8, reference=ref)  # type: ignore[arg-type]
    assert record.reference is not None and record.reference.flips == (("cat", "dog", 1),)
    write_eval(tmp_path / "e.json", record)
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["kind"] == "edgeres.eval" and data["schema"] == 1
    assert data["reference"]["flips"] == [{"reference": "cat", "model": "dog", "count": 1}]
    assert read_eval(tmp_path / "e.json") == record


def test_an_eval_record_without_flips_stays_readable(tmp_path: Path) -> None:
    fp32 = _result([0], [0])
    ref = Reference.measured("m.onnx", _runner(), fp32, agreement=1.0)  # type: ignore[arg-type]
    record = EvalRecord.measured("m.int8.onnx", _runner(), fp32, reference=ref)  # type: ignore[arg-type]
    data = record.to_dict()
    del data["reference"]["flips"]  # as an older edgeres wrote it
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = read_eval(tmp_path / "old.json")
    assert old.reference is not None and old.reference.flips == ()
