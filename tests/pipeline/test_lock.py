"""One pipeline run per output folder: a second process is refused at once, a killed holder blocks nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeres.errors import EdgeresError
from edgeres.pipeline.lock import LOCK_NAME, folder_lock

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from edgeres.pipeline.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def _hold(folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_frees_the_folder(
    tmp_path: Path,
) -> None:
    holder = _hold(tmp_path)
    try:
        with (
            pytest.raises(EdgeresError, match=rf"'{tmp_path}' is in use .*pid {holder.pid}\)"),
            folder_lock(tmp_path),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    with folder_lock(tmp_path) as lock:  # the kernel dropped the dead holder's lock
        assert lock.read_text().strip() == str(os.getpid())


def test_pipeline_into_a_folder_in_use_fails_at_once_with_one_line(
    tmp_path: Path, resnet20_checkpoint: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    holder = _hold(out)
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        start = time.monotonic()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgeres",
                "pipeline",
                str(resnet20_checkpoint),
                "-o",
                str(out),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert time.monotonic() - start < 60
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("error: ") and f"pid {holder.pid}" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # the second run wrote nothing
