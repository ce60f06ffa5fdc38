"""The commands' result files, from real tiny runs: read back through the report's reader, each fills
every field the report uses, and each kind's writer and reader agree (write -> read -> same record)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgeres.records import (
    BenchRecord,
    EvalRecord,
    Gpu,
    Reference,
    read_bench,
    read_eval,
    read_quantize,
    write_bench,
    write_eval,
    write_quantize,
)
from tests.report.fixtures import Results
from tests.result_files import check_bench, check_eval, check_quantize, machine_unfilled, round_trip


def test_each_command_file_fills_every_field_the_report_uses(results: Results) -> None:
    check_eval(results.eval_fp32, reference=False)
    check_eval(results.eval_int8, reference=True)
    check_quantize(results.quant, unfilled=frozenset({"sensitivity", "kept_float"}))  # no --max-drop
    check_bench(results.bench, unfilled=machine_unfilled())


def test_the_fields_a_small_run_leaves_empty_are_read_too(results: Results, tmp_path: Path) -> None:
    bench = read_bench(results.bench)
    environment = replace(
        bench.environment,
        cpu_features=("avx2",),
        cuda_devices=(Gpu(0, "Orin", "8.7", 7.4),),
        jetson=(("jetpack", "6.0"),),
    )
    rows = tuple(replace(r, compute_mean_ms=0.5) for r in bench.results)
    write_bench(tmp_path / "bench.json", replace(bench, environment=environment, results=rows))
    env = check_bench(tmp_path / "bench.json").environment
    assert env is not None and env.gpus == ("Orin (sm 8.7, 7.4 GiB)", "Jetson jetpack: 6.0")
    quant = read_quantize(results.quant)
    targets = tuple(
        replace(t, excluded_nodes=("conv1",), sensitivity=(("conv1", 0.02),)) for t in quant.targets
    )
    write_quantize(tmp_path / "quant.json", replace(quant, targets=targets))
    check_quantize(tmp_path / "quant.json")


def test_each_kind_written_again_reads_as_the_same_record(results: Results, tmp_path: Path) -> None:
    for path in results.all:
        round_trip(path, tmp_path)


def test_records_of_fresh_measurements_survive_write_and_read(results: Results, tmp_path: Path) -> None:
    from edgeres.bench import BenchResult
    from edgeres.data import align_labels, open_source
    from edgeres.evaluate import agreement, evaluate
    from edgeres.export.onnx_meta import read_onnx_meta
    from edgeres.runners import OnnxRuntimeRunner
    from edgeres.sysinfo import collect

    meta = read_onnx_meta(results.fp32)
    source = open_source(str(results.root / "images"))
    classes = align_labels(source, meta.class_names, meta.num_classes)
    runs = {}
    for model in (results.fp32, results.int8):
        runner = OnnxRuntimeRunner(model, threads=1)
        runs[model] = (
            runner,
            evaluate(runner, source, None, meta.preprocessing, progress=False, classes=classes),
        )
    (ref_runner, ref), (runner, result) = runs[results.fp32], runs[results.int8]
    reference = Reference.measured(results.fp32, ref_runner, ref, agreement=agreement(result, ref))
    record = EvalRecord.measured(results.int8, runner, result, name="r20.int8.onnx", reference=reference)
    assert record.size_bytes == results.int8.stat().st_size and record.reference is not None
    write_eval(tmp_path / "eval.json", record)
    assert read_eval(tmp_path / "eval.json") == record

    row = BenchResult.measured(
        model="a.onnx", backend="onnxruntime", device="cpu", precision="fp32", batch=1, threads=1,
        times_ms=[1.0, 1.25, 0.75], compute_ms=[0.5, 0.5],
    )  # fmt: skip
    failed = BenchResult("a.onnx", "onnxruntime", "cpu", "fp32", 8, error="the model takes batches of 1")
    bench = BenchRecord.of([row, failed], collect(), threads=1, settings={"batches": (1, 8), "warmup": 1})
    write_bench(tmp_path / "bench.json", bench)
    assert bench.settings == {"batches": [1, 8], "warmup": 1}  # as plain JSON data
    assert read_bench(tmp_path / "bench.json") == bench
