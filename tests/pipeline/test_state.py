"""The up-to-date bookkeeping of OUT/pipeline.json, on plain files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgeres.pipeline.state import STATE_FILE, PipelineState, StagePlan, data_fingerprint


def test_a_stage_is_up_to_date_until_something_it_depends_on_changes(tmp_path: Path) -> None:
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("a")
    state = PipelineState(tmp_path)
    plan = StagePlan("s1", files=(source,), outputs=(output,))
    assert state.stale("x", plan) == "no finished run recorded"
    inputs = state.inputs(plan)
    output.write_text("b")
    state.record("x", plan, inputs, (output,), 0.1, {"note": "n"})
    again = PipelineState.load(tmp_path)
    assert again.stale("x", plan) is None and again.info("x") == {"note": "n"}
    assert again.stale("x", StagePlan("s2", files=(source,), outputs=(output,))) == "settings changed"
    assert again.stale("x", StagePlan("s1", files=(source,), outputs=(output, tmp_path / "new"))) == (
        "new output: new"
    )
    st = output.stat()
    os.utime(output, ns=(st.st_atime_ns, source.stat().st_mtime_ns - 1))
    assert again.stale("x", plan) == "output older than its inputs: out.txt"
    source.write_text("changed")
    assert again.stale("x", plan) == "input changed: in.txt"
    output.unlink()
    again.forget(["x"])
    assert PipelineState.load(tmp_path).stages == {}


def test_a_damaged_state_file_means_every_stage_runs(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    assert PipelineState.load(tmp_path).stages == {}
    (tmp_path / STATE_FILE).write_text('{"version": 99, "stages": {"export": {}}}')
    assert PipelineState.load(tmp_path).stages == {}
    for foreign in (
        '{"kind": "edgeres.pipeline", "schema": 2, "stages": {"export": {}}}',  # a newer edgeres
        '{"kind": "edgeres.eval", "schema": 1, "stages": {"export": {}}}',
        '{"kind": "edgeres.pipeline", "version": 1, "stages": {"export": {}}}',
        '[{"version": 1}]',
    ):
        (tmp_path / STATE_FILE).write_text(foreign)
        assert PipelineState.load(tmp_path).stages == {}, foreign


def test_the_state_file_states_its_kind_and_reads_the_older_form(tmp_path: Path) -> None:
    state = PipelineState(tmp_path, {"export": {"settings": "s"}})
    state.save()
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert list(saved)[:2] == ["kind", "schema"] and (saved["kind"], saved["schema"]) == (
        "edgeres.pipeline",
        1,
    )
    assert PipelineState.load(tmp_path).stages == {"export": {"settings": "s"}}
    (tmp_path / STATE_FILE).write_text('{"version": 1, "stages": {"export": {"settings": "s"}}}')
    assert PipelineState.load(tmp_path).stages == {"export": {"settings": "s"}}


def test_a_data_folder_is_fingerprinted_by_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "cat"
    folder.mkdir(parents=True)
    (folder / "1.png").write_bytes(b"x")
    before = data_fingerprint(str(tmp_path / "data"))
    assert before["files"] == 1 and before == data_fingerprint(str(tmp_path / "data"))
    (folder / "2.png").write_bytes(b"y")
    assert data_fingerprint(str(tmp_path / "data")) != before
    assert data_fingerprint("digits") == {"spec": "digits"}


def test_a_symlinked_class_folder_is_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "dog"
    elsewhere.mkdir(parents=True)
    (elsewhere / "1.png").write_bytes(b"x")
    data = tmp_path / "data"
    data.mkdir()
    (data / "dog").symlink_to(elsewhere, target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)  # a loop is not walked forever
    before = data_fingerprint(str(data))
    assert before["files"] == 1
    (elsewhere / "2.png").write_bytes(b"y")
    assert data_fingerprint(str(data))["files"] == 2


def test_a_manifest_is_fingerprinted_with_the_images_it_lists(tmp_path: Path) -> None:
    from edgeres.data import write_manifest

    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    image = root / "cat" / "1.png"
    image.write_bytes(b"x")
    manifest = write_manifest(root, ["cat/1.png"], tmp_path / "calib.txt")
    before = data_fingerprint(str(manifest))
    assert before["files"] == 1
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the manifest itself is unchanged
    assert data_fingerprint(str(manifest)) != before
