from __future__ import annotations

from pathlib import Path

import pytest

from edgeres.atomic import atomic_path, write_text_atomic
from edgeres.errors import EdgeresError


def test_success_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_missing_output_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeresError, match="does not exist"):
        write_text_atomic(tmp_path / "nope" / "out.txt", "x")


def test_written_files_get_the_usual_mode(tmp_path: Path) -> None:
    import os

    target = tmp_path / "out.txt"
    write_text_atomic(target, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_check_writable_refuses_before_any_work(tmp_path: Path) -> None:
    from edgeres.atomic import check_writable

    assert check_writable(tmp_path / "out.json") == tmp_path
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(EdgeresError, match="does not exist"):
        check_writable(blocker / "out.json")
    with pytest.raises(EdgeresError, match="is a folder"):
        check_writable(tmp_path)


def test_bench_refuses_an_unusable_json_path_before_timing(run_cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = run_cli("bench", str(tmp_path / "missing.onnx"), "--json", str(blocker / "bench.json"))
    assert r.code == 1 and r.out == ""  # no table: it stopped before measuring
    assert r.err.startswith("error: output folder") and len(r.err.strip().splitlines()) == 1
