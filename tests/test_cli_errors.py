"""The exit-status rule of docs/errors.md, walked as a table, and one line for a full or read-only disk.

2: the command line has to change (click's own checks included); 1: the input or the
machine failed. Every failure is one `error: ...` line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.report import handmade
from tests.tmpfs import mounted_tmpfs


@pytest.fixture(scope="module")
def files(resnet20_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgeres.export import export_onnx
    from edgeres.loading import load_model

    root = tmp_path_factory.mktemp("files")
    loaded = load_model(resnet20_checkpoint)
    onnx_path = root / "m.onnx"
    export_onnx(loaded.require_module(), loaded.meta, onnx_path, verify=False)
    damaged = root / "damaged.onnx"
    damaged.write_bytes(onnx_path.read_bytes()[:500])
    # weights in a side file that is gone
    import onnx

    proto = onnx.load(str(onnx_path))
    ext = root / "ext"
    ext.mkdir()
    onnx.save_model(
        proto, str(ext / "w.onnx"), save_as_external_data=True, location="w.data", size_threshold=0
    )
    (ext / "w.data").unlink()
    e = handmade.evaluation(root / "e.json", "m.onnx", {"cat": (1, 2)})
    wrong = root / "wrong.json"
    data = json.loads(e.read_text())
    data["result"]["top1"] = "high"
    wrong.write_text(json.dumps(data))
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / "images" / c).mkdir(parents=True)
        for i in range(600):  # a manifest of 1200 lines: more than the tiny disk holds
            Image.fromarray(rng.integers(0, 255, (2, 2, 3), dtype=np.uint8)).save(
                root / "images" / c / f"{i}.png"
            )
    return {
        "images": root / "images",
        "ckpt": resnet20_checkpoint,
        "onnx": onnx_path,
        "damaged": damaged,
        "ext": ext / "w.onnx",
        "wrong": wrong,
    }


# (command line with {placeholders}, expected exit status)
TABLE: list[tuple[str, int]] = [
    ("bench --bogus {onnx}", 2),  # unknown option
    ("bench", 2),  # missing argument
    ("bench {onnx} --backend nope", 2),  # bad choice
    ("frobnicate", 2),  # unknown command
    ("train --arch resnet20 --data digits --epochs 1 -o {tmp}/run --seed -1", 2),
    ("convert-fp16 {tmp}/missing.onnx", 2),  # a named file that does not exist
    ("convert-fp16 {onnx} -o {onnx}", 2),  # an output that is the input
    ("bench {onnx} --iters 1 --batch 0", 2),
    ("convert-fp16 {damaged} -o {tmp}/x.onnx", 1),  # a damaged input
    ("convert-fp16 {ext} -o {tmp}/x.onnx", 1),  # its external weights are gone
    ("pipeline {ext} -o {tmp}/p --no-progress --skip bench", 1),
    ("report {wrong} -o {tmp}/rep", 1),  # a wrong-typed result JSON
    ("bench {onnx} {tmp}/missing.onnx --iters 2 --warmup 0", 1),  # one row failed
]


@pytest.mark.parametrize(("line", "code"), TABLE, ids=[t[0].split(" {")[0] + f"->{t[1]}" for t in TABLE])
def test_exit_status_follows_the_written_rule(
    run_cli, files: dict[str, Path], tmp_path: Path, line: str, code: int
) -> None:
    args = line.format(tmp=tmp_path, **files).split()
    r = run_cli(*args)
    assert r.code == code, (line, r.err)
    lines = r.err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), r.err
    assert "Traceback" not in r.err and "Usage:" not in r.err
    assert [x for x in lines if x.startswith("error: ")] == [lines[-1]]


def test_a_usage_error_says_which_help_to_read(run_cli) -> None:
    r = run_cli("bench", "--bogus")
    assert r.err == "error: No such option '--bogus'. (run 'edgeres bench --help')\n" and r.code == 2


def test_a_failed_bench_row_still_shows_the_table(run_cli, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    r = run_cli(
        "bench", str(files["onnx"]), str(tmp_path / "missing.onnx"), "--iters", "2", "--json", str(out)
    )
    assert r.code == 1 and "1 of 2 rows failed" in r.err
    assert "m.onnx" in r.out and "missing.onnx" in r.out
    rows = json.loads(out.read_text())["results"]
    assert [row.get("error") is None for row in rows] == [True, False]


def test_the_report_names_the_file_and_the_wrong_field(
    run_cli, files: dict[str, Path], tmp_path: Path
) -> None:
    r = run_cli("report", str(files["wrong"]), "-o", str(tmp_path / "rep"))
    assert r.code == 1 and "wrong.json" in r.err and "'result.top1' should be a number" in r.err
    assert not (tmp_path / "rep").exists()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk (needs root and permission to mount)."""
    with mounted_tmpfs(tmp_path / "mnt", "64k") as mnt:
        yield mnt


WRITERS: dict[str, Callable[[dict[str, Path], Path], list[str]]] = {
    "create": lambda f, d: ["create", "resnet20", "-o", str(d / "r.pt")],
    "export": lambda f, d: ["export", str(f["ckpt"]), "-o", str(d / "r.onnx")],
    "convert-fp16": lambda f, d: ["convert-fp16", str(f["onnx"]), "-o", str(d / "r16.onnx")],
    "quantize": lambda f, d: ["quantize", str(f["onnx"]), "--calib", "digits", "--calib-size", "16",
                              "-o", str(d / "q.onnx"), "--no-progress"],
    # the manifest writer's own OSError, turned into one line by the CLI
    "calib-set": lambda f, d: ["calib-set", str(f["images"]), "--size", "1200", "-o", str(d / "c.txt")],
}  # fmt: skip


@pytest.mark.parametrize("command", list(WRITERS))
def test_a_full_disk_is_one_line(run_cli, files: dict[str, Path], tiny_fs: Path, command: str) -> None:
    r = run_cli(*WRITERS[command](files, tiny_fs))
    assert r.code == 1, r.err
    lines = r.err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "No space left on device" in lines[-1], r.err
    assert "Traceback" not in r.err and str(tiny_fs) in lines[-1]
    assert not [p.name for p in tiny_fs.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("command", [*WRITERS, "bench", "pipeline"])
def test_a_read_only_folder_is_one_line(run_cli, files: dict[str, Path], tiny_fs: Path, command: str) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only: {done.stderr.decode().strip()}")
    extra = {
        "bench": lambda f, d: ["bench", str(f["onnx"]), "--iters", "1", "--json", str(d / "b.json")],
        "pipeline": lambda f, d: ["pipeline", str(f["ckpt"]), "-o", str(d / "p"), "--no-progress"],
    }
    r = run_cli(*{**WRITERS, **extra}[command](files, tiny_fs))
    assert r.code == 1, r.err
    lines = r.err.strip().splitlines()
    assert lines[-1].startswith("error: ") and str(tiny_fs) in lines[-1] and "Traceback" not in r.err, r.err


@pytest.mark.parametrize(("field", "value"), [("num_images", "Infinity"), ("top1", "NaN")])
def test_a_result_with_a_non_finite_number_is_refused(
    run_cli, files: dict[str, Path], tmp_path: Path, field, value
) -> None:
    """A result file holding Infinity or NaN (json.loads reads both) is damaged, in any field."""
    data = json.loads(files["wrong"].read_text())
    data["result"]["top1"] = 0.5
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(data).replace(f'"{field}": {json.dumps(data["result"][field])}', f'"{field}": {value}')
    )
    assert value in bad.read_text()
    r = run_cli("report", str(bad), "-o", str(tmp_path / "rep"))
    assert r.code == 1 and f"'result.{field}' should be" in r.err and r.err.count("\n") == 1, r.err


_INTERRUPTED = """
import click

from edgeres.cli import cli, main


@cli.command("interrupted")
@click.option("--in-exec", is_flag=True)
def interrupted(in_exec: bool) -> None:
    if in_exec:  # as when Ctrl-C lands while a lazy import makes a dataclass
        exec("raise KeyboardInterrupt")
    raise KeyboardInterrupt


main()
"""


@pytest.mark.parametrize("where", ["", "--in-exec"])
def test_ctrl_c_ends_the_command_by_sigint_wherever_it_lands(tmp_path: Path, where: str) -> None:
    """One Ctrl-C, one ending: `aborted`, then death by SIGINT, which a shell shows as 130.

    Under `python -m`, `sys.exit(130)` ended with SIGINT anyway when the interrupt had been
    raised in code run by exec(), and with 130 otherwise.
    """
    import os
    import signal
    import sys

    (tmp_path / "interrupting.py").write_text(_INTERRUPTED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    command = [sys.executable, "-m", "interrupting", "interrupted", *([where] if where else [])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == -signal.SIGINT and done.stderr.rstrip().endswith("aborted"), done.stderr
    shell = subprocess.run(
        ["bash", "-c", '"$@"; echo "status $?"', "bash", *command], capture_output=True, text=True, env=env
    )
    assert shell.stdout.split()[-2:] == ["status", "130"], shell


def test_ctrl_c_in_process_exits_130_and_leaves_the_caller_alive(
    run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgeres.models

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(edgeres.models, "list_models", interrupted)
    result = run_cli("models")
    assert result.code == 130 and result.err.rstrip().endswith("aborted"), result
