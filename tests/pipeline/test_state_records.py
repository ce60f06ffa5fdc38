"""What pipeline.json keeps about each stage, and when a stage counts as up to date.

Each test drives PipelineState the way a pipeline run does (record, begin, unfinished, discard,
forget), then reads pipeline.json back as the next run would.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from pathlib import Path

import pytest

from edgeres.pipeline.state import STATE_FILE, PipelineState, StagePlan

T0 = 1_700_000_000 * 10**9


def _file(path: Path, mtime_ns: int = T0, data: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def _finished(out: Path, name: str, plan: StagePlan, outputs: tuple[Path, ...] = ()) -> PipelineState:
    """A state in which stage ``name`` finished with ``plan`` and wrote ``outputs``."""
    out.mkdir(parents=True, exist_ok=True)
    state = PipelineState(out)
    state.record(name, plan, state.inputs(plan), outputs, 0.5, {})
    return PipelineState.load(out)


def _saved(out: Path) -> dict:
    return json.loads((out / STATE_FILE).read_text(encoding="utf-8"))


@dataclasses.dataclass(frozen=True)
class _QuantizePlan:
    targets: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _EvalPlan:
    variants: tuple[str, ...]


def test_a_plan_hands_back_its_details_only_as_the_type_they_are() -> None:
    plan = StagePlan("s", extra=_QuantizePlan(("cpu",)))
    assert plan.details(_QuantizePlan) == _QuantizePlan(("cpu",))
    with pytest.raises(TypeError) as exc:
        plan.details(_EvalPlan)
    assert str(exc.value) == "this plan holds _QuantizePlan, not _EvalPlan"
    with pytest.raises(TypeError) as exc:
        StagePlan("s").details(_EvalPlan)
    assert str(exc.value) == "this plan holds NoneType, not _EvalPlan"


def test_a_finished_stage_is_recorded_with_its_time_taken_and_when_it_finished(tmp_path: Path) -> None:
    out = tmp_path / "out"
    model = _file(out / "model.onnx")
    state = PipelineState(out)
    state.record("export", StagePlan("s"), {}, (model,), 1.23456, {"note": "n"})
    record = _saved(out)["stages"]["export"]
    assert set(record) == {"settings", "inputs", "outputs", "seconds", "finished", "info"}
    assert (record["settings"], record["inputs"], record["outputs"]) == ("s", {}, ["model.onnx"])
    assert record["seconds"] == 1.235 and record["info"] == {"note": "n"}
    finished = datetime.datetime.fromisoformat(record["finished"])
    assert finished.utcoffset() == datetime.timedelta(0) and finished.microsecond == 0
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - finished).total_seconds()) < 60


def test_pipeline_json_is_written_sorted_and_indented_for_people_to_read(tmp_path: Path) -> None:
    state = PipelineState(tmp_path, {"export": {"settings": "s", "info": {}}}, {"quantize": ["a.onnx"]})
    state.save()
    assert (tmp_path / STATE_FILE).read_text(encoding="utf-8") == (
        "{\n"
        '  "kind": "edgeres.pipeline",\n'
        '  "leftovers": {\n'
        '    "quantize": [\n'
        '      "a.onnx"\n'
        "    ]\n"
        "  },\n"
        '  "schema": 1,\n'
        '  "stages": {\n'
        '    "export": {\n'
        '      "info": {},\n'
        '      "settings": "s"\n'
        "    }\n"
        "  }\n"
        "}\n"
    )


def test_files_inside_out_are_named_relative_to_it_and_others_by_their_full_path(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", _file(tmp_path / "src" / "model.pt")
    state = PipelineState(out)
    assert state.key(out / "sub" / "a.onnx") == "sub/a.onnx"
    assert state.key(elsewhere) == str(elsewhere.resolve())
    assert state.resolve("sub/a.onnx") == out / "sub" / "a.onnx"
    assert state.resolve(str(elsewhere)) == elsewhere


def test_a_record_with_nothing_usable_gives_no_outputs_and_no_info(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text(
        json.dumps(
            {
                "kind": "edgeres.pipeline",
                "schema": 1,
                "stages": {
                    "export": {"settings": "s", "info": ["not", "a", "dict"]},
                    "bench": {"settings": "s", "outputs": "bench.json"},
                    "eval": "broken",
                },
                "leftovers": {"quantize": ["a.onnx", 3], "bench": "not a list"},
            }
        )
    )
    state = PipelineState.load(tmp_path)
    assert set(state.stages) == {"export", "bench"} and state.leftovers == {"quantize": ["a.onnx", "3"]}
    assert state.begin("bench") == ()  # outputs that are not a list name no file
    assert state.outputs("export") == () and state.info("export") == {}
    assert state.outputs("never-ran") == () and state.info("never-ran") == {}
    (tmp_path / STATE_FILE).write_text(
        '{"kind": "edgeres.pipeline", "schema": 1, "stages": {}, "leftovers": []}'
    )
    assert PipelineState.load(tmp_path).leftovers == {}


def test_an_unreadable_state_file_is_reported_once_as_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / STATE_FILE
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="edgeres.pipeline.state"):
        ignored = PipelineState.load(tmp_path)
    assert (ignored.stages, ignored.path) == ({}, path)  # and it is rewritten at the next save
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith(f"ignoring {path} (Expecting property name enclosed in double quotes")
    assert message.endswith("): every stage runs again")
    caplog.clear()
    path.write_text('{"kind": "edgeres.pipeline", "stages": {}}')  # no schema: not ours
    with caplog.at_level(logging.WARNING, logger="edgeres.pipeline.state"):
        ignored = PipelineState.load(tmp_path)
    assert (ignored.stages, ignored.path) == ({}, path)
    assert [r.getMessage() for r in caplog.records] == [
        f"ignoring {path} (not a state file of this edgeres): every stage runs again"
    ]
    caplog.clear()
    (tmp_path / "missing").mkdir()
    with caplog.at_level(logging.WARNING, logger="edgeres.pipeline.state"):
        fresh = PipelineState.load(tmp_path / "missing")  # no file yet: nothing to say
    assert (fresh.stages, fresh.path) == ({}, tmp_path / "missing" / STATE_FILE)
    assert caplog.records == []


def test_an_input_changed_outside_out_is_named_by_its_file_name(tmp_path: Path) -> None:
    out, source = tmp_path / "out", _file(tmp_path / "src" / "model.pt")
    plan = StagePlan("s", files=(source,))
    state = _finished(out, "export", plan)
    assert state.stale("export", plan) is None
    _file(source, T0 + 1)
    assert state.stale("export", plan) == "input changed: model.pt"


def test_a_changed_data_folder_is_named_as_given(tmp_path: Path) -> None:
    folder = tmp_path / "calib"
    _file(folder / "0" / "1.png")
    plan = StagePlan("s", data=(str(folder),))
    state = _finished(tmp_path / "out", "quantize", plan)
    assert state.stale("quantize", plan) is None
    _file(folder / "0" / "2.png")
    assert PipelineState.load(tmp_path / "out").stale("quantize", plan) == f"input changed: {folder}"


def test_a_data_folder_is_fingerprinted_once_per_run(tmp_path: Path) -> None:
    """Every stage of one run sees the data as it was when the run first looked at it."""
    folder = tmp_path / "calib"
    _file(folder / "0" / "1.png")
    plan = StagePlan("s", data=(str(folder),))
    state = PipelineState(tmp_path / "out")
    first = state.inputs(plan)
    _file(folder / "0" / "2.png")
    assert state.inputs(plan) == first == {f"data:{folder}": first[f"data:{folder}"]}
    assert PipelineState(tmp_path / "out").inputs(plan) != first  # the next run sees the new image


def test_a_record_without_inputs_is_stale_when_the_plan_has_some(tmp_path: Path) -> None:
    source = _file(tmp_path / "src" / "model.pt")
    (tmp_path / STATE_FILE).write_text(
        '{"kind": "edgeres.pipeline", "schema": 1, "stages": {"export": {"settings": "s"}}}'
    )
    state = PipelineState.load(tmp_path)
    assert state.stale("export", StagePlan("s")) is None
    assert state.stale("export", StagePlan("s", files=(source,))) == "input changed: model.pt"


def test_a_missing_input_that_appears_is_a_change(tmp_path: Path) -> None:
    out, source = tmp_path / "out", tmp_path / "src" / "labels.json"
    plan = StagePlan("s", files=(source,))
    state = _finished(out, "eval", plan)
    assert state.stages["eval"]["inputs"] == {str(source.resolve()): None}
    assert state.stale("eval", plan) is None
    _file(source)
    assert state.stale("eval", plan) == "input changed: labels.json"


def test_a_recorded_output_that_is_gone_reruns_the_stage(tmp_path: Path) -> None:
    out = tmp_path / "out"
    extra = _file(out / "report" / "figure.png")
    plan = StagePlan("s")  # the figure is known only after the run: recorded, not planned
    state = _finished(out, "report", plan, (extra,))
    assert state.stale("report", plan) is None
    extra.unlink()
    assert state.stale("report", plan) == "output missing: report/figure.png"


def test_an_output_as_new_as_its_newest_input_is_up_to_date(tmp_path: Path) -> None:
    """A coarse clock can give an input and the output made from it the same time."""
    out = tmp_path / "out"
    older, newer = _file(tmp_path / "a.pt", T0), _file(tmp_path / "b.pt", T0 + 10)
    output = _file(out / "model.onnx", T0 + 10)
    plan = StagePlan("s", files=(older, newer), outputs=(output,))
    state = _finished(out, "export", plan, (output,))
    assert state.stale("export", plan) is None
    os.utime(output, ns=(T0, T0 + 9))
    assert state.stale("export", plan) == "output older than its inputs: model.onnx"


def test_outputs_of_a_stage_whose_inputs_have_no_time_are_up_to_date(tmp_path: Path) -> None:
    """A named data set has no file time; an output from an archive may carry the time 0."""
    out = tmp_path / "out"
    output = _file(out / "eval.json", 0)
    plan = StagePlan("s", data=("digits",), outputs=(output,))
    state = _finished(out, "eval", plan, (output,))
    assert state.stale("eval", plan) is None


def test_a_run_that_begins_drops_the_record_and_lists_what_it_may_leave(tmp_path: Path) -> None:
    out = tmp_path / "out"
    a, b = _file(out / "a.onnx"), _file(out / "b.onnx")
    state = PipelineState(out, leftovers={"quantize": ["old.onnx", "a.onnx"]})
    state.record("quantize", StagePlan("s"), {}, (a, b), 0.1, {})
    state.leftovers["quantize"] = ["old.onnx", "a.onnx"]  # as a run stopped halfway before had left
    state.save()
    state = PipelineState.load(out)
    assert state.begin("quantize") == (out / "old.onnx", out / "a.onnx", out / "b.onnx")
    again = PipelineState.load(out)
    assert again.stages == {} and again.leftovers == {"quantize": ["old.onnx", "a.onnx", "b.onnx"]}
    assert again.stale("quantize", StagePlan("s")) == "no finished run recorded"
    # the run finishes: its record is back and nothing is left over any more
    again.record("quantize", StagePlan("s"), {}, (a,), 0.1, {})
    final = PipelineState.load(out)
    assert final.leftovers == {} and final.outputs("quantize") == (a,)
    assert "leftovers" not in _saved(out)


def test_a_stage_that_wrote_nothing_is_still_dropped_when_it_begins(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state = _finished(out, "bench", StagePlan("s"))
    assert state.begin("bench") == ()
    assert PipelineState.load(out).stages == {}


def test_beginning_a_stage_with_no_record_leaves_the_file_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert PipelineState(out).begin("bench") == ()
    assert not (out / STATE_FILE).exists()
    state = PipelineState(out, leftovers={"bench": ["bench.json"]})
    assert state.begin("bench") == (out / "bench.json",)
    assert _saved(out)["leftovers"] == {"bench": ["bench.json"]}


def test_an_unfinished_run_lists_what_it_wrote_and_nothing_when_it_wrote_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    state = PipelineState(out, leftovers={"eval": ["old.json"], "bench": ["bench.json"]})
    state.unfinished("eval", (out / "eval_fp32.json", tmp_path / "elsewhere.json"))
    assert PipelineState.load(out).leftovers == {
        "eval": ["eval_fp32.json", str((tmp_path / "elsewhere.json").resolve())],
        "bench": ["bench.json"],
    }
    state.unfinished("eval", ())
    state.unfinished("never-ran", ())
    assert PipelineState.load(out).leftovers == {"bench": ["bench.json"]}


def test_a_discarded_stage_hands_back_all_it_wrote_and_is_forgotten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    a, b = _file(out / "a.onnx"), _file(out / "b.onnx")
    state = PipelineState(out)
    state.record("fp16", StagePlan("s"), {}, (a, b), 0.1, {})
    state.record("eval", StagePlan("s"), {}, (), 0.1, {})
    state.leftovers["fp16"] = ["old.onnx", "a.onnx"]
    state.save()
    state = PipelineState.load(out)
    assert state.discard("fp16") == (out / "old.onnx", out / "a.onnx", out / "b.onnx")
    assert set(PipelineState.load(out).stages) == {"eval"} and PipelineState.load(out).leftovers == {}
    assert state.discard("eval") == ()  # no outputs, but a record: it is dropped from the file too
    assert PipelineState.load(out).stages == {}
    state.leftovers["bench"] = ["bench.json"]  # only a leftover, not yet saved
    assert state.discard("bench") == (out / "bench.json",)
    assert PipelineState.load(out).leftovers == {}
    (out / STATE_FILE).unlink()
    assert state.discard("never-ran") == ()
    assert not (out / STATE_FILE).exists()  # nothing changed: nothing written


def test_forgetting_stages_drops_only_those_that_are_recorded(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state = _finished(out, "fp16", StagePlan("s"))
    state.record("eval", StagePlan("s"), {}, (), 0.1, {})
    state.forget(["fp16", "never-ran"])
    assert set(PipelineState.load(out).stages) == {"eval"}
    (out / STATE_FILE).unlink()
    state.forget(["never-ran"])
    assert not (out / STATE_FILE).exists()
