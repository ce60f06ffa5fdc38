"""Reading result files: by the kind they state (or, from an older edgeres, by their keys), folders,
and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeres.errors import EdgeresError, UsageError
from edgeres.records import read_bench, read_eval, read_quantize
from edgeres.report.inputs import classify, expand_sources, read_source
from tests.report.fixtures import Results, rewrite


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


def test_each_real_file_states_its_kind_and_schema_first(results: Results) -> None:
    kinds = {p.name: json.loads(p.read_text()) for p in results.all}
    assert {name: (d["kind"], d["schema"]) for name, d in kinds.items() if name != "eval_fp16.json"} == {
        "eval_fp32.json": ("edgeres.eval", 1),
        "eval_int8.json": ("edgeres.eval", 1),
        "quant.json": ("edgeres.quantize", 1),
        "bench.json": ("edgeres.bench", 1),
    }
    assert all(list(d)[:2] == ["kind", "schema"] for d in kinds.values())


def test_a_file_without_kind_is_read_by_its_keys_as_before(copied: Results) -> None:
    """An older edgeres wrote no kind: the same facts, from the keys; fields it lacks are empty."""
    for path in copied.all:
        stated = read_source(path)
        rewrite(path, lambda d: [d.pop("kind"), d.pop("schema")])
        assert read_source(path) == stated, path.name
    rewrite(copied.eval_int8, lambda d: [d.pop("backend"), d.pop("size_bytes"), d["result"].pop("skipped")])
    loaded = read_source(copied.eval_int8)
    assert loaded is not None and (loaded.facts[0].backend, loaded.facts[0].size_bytes) == (None, None)


def test_a_stated_kind_is_read_strictly_a_renamed_field_is_an_error(copied: Results) -> None:
    cases = [
        (copied.eval_int8, lambda d: d["result"].update(top_1=d["result"].pop("top1")), "result.top1"),
        (copied.eval_int8, lambda d: d["reference"].pop("agreement"), "reference.agreement"),
        (copied.bench, lambda d: d["results"][0].pop("mean_ms"), r"results\[0\]\.mean_ms"),
        (copied.bench, lambda d: d["environment"].pop("cpu_model"), "environment.cpu_model"),
        (copied.quant, lambda d: d["targets"][0].pop("agreement"), r"targets\[0\]\.agreement"),
    ]
    for path, change, field in cases:
        before = path.read_text()
        rewrite(path, change)
        with pytest.raises(
            EdgeresError, match=rf"result file '.*{path.name}' is malformed: field '{field}' is missing"
        ):
            read_source(path)
        path.write_text(before)
    rewrite(copied.bench, lambda d: d["results"][0].update(batch="1"))
    with pytest.raises(
        EdgeresError, match=r"field 'results\[0\]\.batch' should be an integer, not a string"
    ) as info:
        read_source(copied.bench)
    assert str(info.value).startswith(f"bench result file '{copied.bench}'") and "\n" not in str(info.value)


def test_an_unknown_kind_or_a_newer_schema_is_a_one_line_error(copied: Results, caplog) -> None:
    rewrite(copied.eval_fp32, lambda d: d.update(kind="edgeres.timeline"))
    with pytest.raises(
        EdgeresError, match=r"eval_fp32\.json' holds 'edgeres\.timeline', which is not an edgeres"
    ) as info:
        read_source(copied.eval_fp32)
    assert "\n" not in str(info.value)
    assert read_source(copied.eval_fp32, explicit=False) is None  # in a folder: skipped, with a warning
    assert "eval_fp32.json" in caplog.text and "edgeres.timeline" in caplog.text
    rewrite(copied.bench, lambda d: d.update(schema=2))
    with pytest.raises(
        EdgeresError, match=r"bench result file '.*bench\.json' has schema 2, newer than this"
    ) as info:
        read_source(copied.bench, explicit=False)  # a result all the same: not skipped
    assert str(info.value).endswith("upgrade edgeres to read it")
    for schema in ("1", None, 0, True):
        rewrite(copied.quant, lambda d, s=schema: d.update(schema=s))
        with pytest.raises(EdgeresError, match=r"quantize result file '.*' is malformed: field 'schema'"):
            read_source(copied.quant)


def test_each_reader_reads_its_own_kind_only(results: Results) -> None:
    assert read_eval(results.eval_int8).reference is not None
    assert read_bench(results.bench).results and read_quantize(results.quant).targets
    with pytest.raises(
        EdgeresError, match=r"bench\.json' holds 'edgeres\.bench', not an edgeres eval result"
    ):
        read_eval(results.bench)
    with pytest.raises(EdgeresError, match=r"does not say what it holds, not an edgeres quantize result"):
        read_quantize(results.root / "r20.int8.calib.json")
