"""The pipeline's result files (eval_*.json, quantize.json, bench.json): each states its kind, fills
every field the report uses when read back through the report's reader, and reads as it was written."""

from __future__ import annotations

import json
from pathlib import Path

from edgeres.pipeline.results import PipelineResult
from tests.result_files import check_bench, check_eval, check_quantize, machine_unfilled, round_trip

FILES = {
    "eval_fp32.json": "edgeres.eval",
    "eval_int8-cpu.json": "edgeres.eval",
    "quantize.json": "edgeres.quantize",
    "bench.json": "edgeres.bench",
}


def test_each_pipeline_file_states_its_kind_first(first_run: tuple[Path, PipelineResult]) -> None:
    out, _ = first_run
    for name, kind in FILES.items():
        data = json.loads((out / name).read_text())
        assert list(data)[:2] == ["kind", "schema"] and (data["kind"], data["schema"]) == (kind, 1), name


def test_each_pipeline_file_fills_every_field_the_report_uses(first_run: tuple[Path, PipelineResult]) -> None:
    out, _ = first_run
    check_eval(out / "eval_fp32.json", reference=False)
    check_eval(out / "eval_int8-cpu.json", reference=True)
    check_quantize(out / "quantize.json", unfilled=frozenset({"sensitivity", "kept_float"}))  # no max_drop
    check_bench(out / "bench.json", unfilled=machine_unfilled() | {"threads"})  # all cores: none asked for


def test_each_pipeline_file_written_again_reads_as_the_same_record(
    first_run: tuple[Path, PipelineResult], tmp_path: Path
) -> None:
    out, _ = first_run
    for name in FILES:
        round_trip(out / name, tmp_path)
