"""`edgeres report` from the command line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.report.fixtures import Results, copied_fixture, results_fixture

__all__ = ["copied_fixture", "results_fixture"]  # the fixtures copied and results


def test_report_prints_the_table_and_writes_three_files(run_cli, results: Results, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    r = run_cli("report", *map(str, results.all), "-o", str(out), "--title", "r20 on this CPU")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:2] == ["variant", "precision"]
    assert lines[1].startswith("FP32 ") and "baseline" in lines[1]
    assert lines[-3:] == [f"wrote {out / name}" for name in ("report.md", "report.json", "report.html")]
    assert json.loads((out / "report.json").read_text())["title"] == "r20 on this CPU"
    if importlib.util.find_spec("matplotlib") is not None:  # the demo extra, installed for the tests
        assert "<svg" in (out / "report.html").read_text() and "matplotlib" not in r.err
    else:
        assert "<svg" not in (out / "report.html").read_text() and "matplotlib is not installed" in r.err


def test_a_folder_of_results_skips_other_json(run_cli, copied: Results, tmp_path: Path) -> None:
    r = run_cli("report", str(copied.root), "-o", str(tmp_path / "rep"))
    assert r.code == 0, r.err
    assert "skipped" in r.err and "r20.int8.calib.json" in r.err
    sources = json.loads((tmp_path / "rep" / "report.json").read_text())["sources"]
    assert {Path(s["path"]).name for s in sources} == {p.name for p in copied.all}


def test_no_results_is_a_one_line_usage_error(run_cli, tmp_path: Path) -> None:
    r = run_cli("report", "-o", str(tmp_path / "rep"))
    assert r.code == 2 and r.err.startswith("error: no results given") and r.err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    r = run_cli("report", str(tmp_path / "empty"), "-o", str(tmp_path / "rep"))
    assert r.code == 2 and r.err.startswith("error: no results in") and r.err.count("\n") == 1
    assert not (tmp_path / "rep").exists()


def test_a_corrupt_file_is_named_and_nothing_is_written(run_cli, copied: Results, tmp_path: Path) -> None:
    copied.bench.write_text(copied.bench.read_text()[:200])  # cut short
    r = run_cli("report", *map(str, copied.all), "-o", str(tmp_path / "rep"))
    assert r.code == 1 and r.err.count("\n") == 1 and "Traceback" not in r.err
    assert r.err.startswith(f"error: result file '{copied.bench}' is not valid JSON")
    assert not (tmp_path / "rep").exists() and r.out == ""


def test_an_unknown_json_is_named(run_cli, tmp_path: Path) -> None:
    other = tmp_path / "package.json"
    other.write_text('{"name": "x"}')
    r = run_cli("report", str(other))
    assert r.code == 1 and f"'{other}' is not an edgeres eval, bench or quantize JSON" in r.err


def test_an_output_folder_that_cannot_be_made_is_a_one_line_error(
    run_cli, results: Results, tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    for out in (taken, taken / "rep"):
        r = run_cli("report", str(results.bench), "-o", str(out))
        assert r.code == 2 and r.err.startswith("error: ") and r.err.count("\n") == 1, r.err
        assert "-o/--out" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert taken.read_text() == "a file, not a folder"


def test_a_missing_result_file_is_a_usage_error(run_cli, tmp_path: Path) -> None:
    r = run_cli("report", str(tmp_path / "nope.json"))
    assert r.code == 2 and "nope.json' does not exist" in r.err
