"""Reading result files: their kind from their keys, folders, and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeres.errors import EdgeresError, UsageError
from edgeres.report.inputs import classify, expand_sources, read_source
from tests.report.fixtures import Results


def test_each_real_file_is_recognised_by_its_keys(results: Results) -> None:
    kinds = {p.name: classify(json.loads(p.read_text())) for p in results.all}
    assert kinds["eval_fp32.json"] == kinds["eval_int8.json"] == "eval"
    assert kinds["bench.json"] == "bench" and kinds["quant.json"] == "quantize"
    calib_cache = json.loads((results.root / "r20.int8.calib.json").read_text())
    assert classify(calib_cache) is None
    assert classify([1, 2]) is None


def test_facts_of_an_eval_with_a_reference(results: Results) -> None:
    loaded = read_source(results.eval_int8)
    assert loaded is not None and loaded.source.kind == "eval"
    main, ref = loaded.facts
    assert (main.model, main.kind, main.precision) == ("r20.int8.onnx", "eval", "int8")
    assert (ref.model, ref.kind, ref.precision) == ("r20.onnx", "reference", "fp32")
    assert main.size_bytes == results.int8.stat().st_size
    assert main.accuracy is not None and main.accuracy.reference == "r20.onnx"
    assert main.accuracy.images == 40 and len(main.accuracy.per_class) == 10
    written = json.loads(results.eval_int8.read_text())["reference"]["agreement"]
    assert isinstance(written, float) and main.accuracy.agreement == written  # the eval file's own figure


def test_facts_of_a_bench_and_a_quantize_report(results: Results) -> None:
    bench = read_source(results.bench)
    assert bench is not None and bench.environment is not None
    assert bench.environment.threads == 1 and bench.environment.cpu_count
    rows = [(f.model, f.latency.batch) for f in bench.facts if f.latency]
    assert ("r20.onnx", 1) in rows and ("r20.int8.onnx", 2) in rows
    quant = read_source(results.quant)
    assert quant is not None and quant.arch == "resnet20"
    assert [(f.model, f.precision, f.target) for f in quant.facts] == [
        ("r20.onnx", "fp32", None),
        ("r20.int8.onnx", "int8", "cpu"),
    ]


def test_a_folder_gives_its_json_files_and_skips_other_json(results: Results, caplog) -> None:
    files = expand_sources([results.root])
    names = {p.name for p, explicit in files if not explicit}
    assert {"bench.json", "quant.json", "eval_int8.json", "r20.int8.calib.json"} <= names
    calib = next(p for p, _ in files if p.name == "r20.int8.calib.json")
    assert read_source(calib, explicit=False) is None
    assert "r20.int8.calib.json" in caplog.text
    with pytest.raises(
        EdgeresError, match=r"r20\.int8\.calib\.json.* is not an edgeres eval, bench or quantize"
    ):
        read_source(calib, explicit=True)


def test_the_same_file_twice_is_read_once(results: Results) -> None:
    assert len(expand_sources([results.bench, results.bench, results.root / "." / "bench.json"])) == 1


def test_missing_corrupt_and_malformed_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope\.json' does not exist"):
        expand_sources([tmp_path / "nope.json"])
    cut = tmp_path / "cut.json"
    cut.write_text('{"model": "a.onnx", "res')
    with pytest.raises(EdgeresError, match=r"'.*cut\.json' is not valid JSON \(line 1\)") as info:
        read_source(cut)
    assert "\n" not in str(info.value)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(EdgeresError, match=r"bin\.json"):
        read_source(binary)
    bad = tmp_path / "bad_bench.json"
    bad.write_text(json.dumps({"environment": {}, "results": [{"model": "m.onnx"}]}))
    with pytest.raises(EdgeresError, match=r"bench result file '.*bad_bench\.json' is malformed"):
        read_source(bad)


def test_a_previous_report_is_refused_by_name(tmp_path: Path) -> None:
    old = tmp_path / "report.json"
    old.write_text(json.dumps({"title": "t", "variants": [], "sources": []}))
    with pytest.raises(EdgeresError, match="a report written by edgeres report"):
        read_source(old)
