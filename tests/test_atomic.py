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


WRITER = """
import sys, time
from edgeres.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    print(tmp, flush=True)
    time.sleep(60)
"""


def test_a_killed_write_leaves_its_temporary_and_the_next_write_removes_it(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    target = tmp_path / "model.onnx"
    target.write_text("old")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    leftovers = []
    for _ in range(3):  # kill -9 in the middle of a write, three times
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.is_file()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        leftovers.append(tmp)
    assert target.read_text() == "old"
    # each write removed the one before it left: they never pile up, only the last is there
    assert [p.name for p in tmp_path.glob(".model.onnx.*")] == [leftovers[-1].name]
    other = tmp_path / ".someone-elses.tmp"  # not of edgeres's naming: never touched
    other.write_text("x")
    write_text_atomic(tmp_path / "other.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".someone-elses.tmp", "model.onnx", "other.json"]


def test_a_temporary_of_a_running_write_is_kept(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "a.bin")], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        tmp = Path(proc.stdout.readline().strip())
        write_text_atomic(tmp_path / "b.json", "{}")
        assert tmp.is_file()  # its writer is alive: not stale
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def test_a_device_is_never_replaced(tmp_path: Path) -> None:
    with pytest.raises(EdgeresError, match="not a regular file"):
        write_text_atomic("/dev/null", "x")
    assert Path("/dev/null").is_char_device()
