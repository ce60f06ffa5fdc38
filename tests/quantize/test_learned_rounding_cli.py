"""``quantize --rounding adaround`` end to end: what it records, what it refuses, and a run killed
in the middle (nothing half-written; the cache keeps the finished layers; a rerun resumes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.quantize.conftest import FragileModel
from tests.tmpfs import mounted_tmpfs

FAST = ("--rounding", "adaround", "--rounding-iterations", "40", "--no-progress")


def _integers(path: Path, fp32: Path) -> dict[str, np.ndarray]:
    import onnx

    from edgeres.quantize.adaround_data import rounding_layers
    from edgeres.quantize.learned_rounding import written_integers
    from edgeres.quantize.qdq import prepare_onnx

    qdq = onnx.load(str(path))
    prepared = onnx.load(str(prepare_onnx(fp32, path.with_suffix(".prepared.onnx"))))
    path.with_suffix(".prepared.onnx").unlink()
    return {layer.node: written_integers(qdq, layer) for layer in rounding_layers(prepared, qdq, 64)}


def test_quantize_records_learned_rounding_and_reuses_it_from_the_cache(
    fragile_model: FragileModel, tmp_path: Path, run_cli
) -> None:
    from edgeres.records import read_quantize

    out, js = tmp_path / "m.onnx", tmp_path / "m.json"
    common = ["quantize", str(fragile_model.fp32), "--target", "cpu", "--weight-bits", "7", *FAST]
    r = run_cli(
        *common, "--calib", fragile_model.data, "--calib-size", "96", "-o", str(out), "--json", str(js)
    )
    assert r.code == 0, r.err
    assert "learned rounding (cpu): 20 layers on 96 images, " in r.out and "lower" in r.out
    record = read_quantize(js).targets[0]
    assert record.rounding is not None and record.bias_correction is not None
    assert (record.rounding.method, record.rounding.layers, record.rounding.images) == ("adaround", 20, 96)
    assert record.rounding.settings["iterations"] == 40 and record.rounding.reused_layers == 0
    assert 0 < record.rounding.flipped < 0.5 and len(record.rounding.per_layer) == 20
    meta = json.loads(
        {p.key: p.value for p in __import__("onnx").load(str(out)).metadata_props}["edgeres.quantization"]
    )
    assert meta["calibration"]["learned_rounding"] == {"method": "adaround", "layers": 20}
    cache = json.loads((tmp_path / "m.calib.json").read_text())
    (key,) = cache["learned_rounding"]
    assert key.startswith("cpu|w7|adaround:") and len(cache["learned_rounding"][key]["layers"]) == 20
    assert sorted(cache["bias_corrections"]) == [key]  # the correction measured on the learned integers

    # the cache alone (no images) gives the same model, and says where its integers came from
    again, again_js = tmp_path / "again.onnx", tmp_path / "again.json"
    reuse = ["--calib-cache", str(tmp_path / "m.calib.json"), "-o", str(again), "--json", str(again_js)]
    r = run_cli(*common, *reuse)
    assert r.code == 0, r.err
    assert "20 from the cache" in r.out
    assert read_quantize(again_js).targets[0].rounding.reused_layers == 20
    first, second = _integers(out, fragile_model.fp32), _integers(again, fragile_model.fp32)
    assert first.keys() == second.keys() and len(first) == 20
    assert all(np.array_equal(first[k], second[k]) for k in first)

    # other settings are another entry: without images they cannot be learned
    other = [*common[:-2], "41", "--no-progress", *reuse[:2], "-o", str(tmp_path / "x.onnx")]
    r = run_cli(*other)
    assert r.code == 2 and r.err.count("\n") == 1
    assert "learned rounding needs calibration images: give --calib DIR" in r.err
    assert not (tmp_path / "x.onnx").exists()


def test_too_few_images_and_no_weights_are_one_line_errors(
    fragile_model: FragileModel, tmp_path: Path, run_cli
) -> None:
    base = ["quantize", str(fragile_model.fp32), "--calib", fragile_model.data, "--target", "cpu", *FAST]
    r = run_cli(*base, "--calib-size", "20", "-o", str(tmp_path / "a.onnx"))
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "learned rounding needs at least 64 calibration images, got 20" in r.err
    assert "--calib-size 64 or more" in r.err
    # every conv and the classifier kept in float: no weights to round
    r = run_cli(*base, "--calib-size", "96", "--exclude", "*Conv*", "--exclude", "*Gemm*", "-o",
                str(tmp_path / "b.onnx"))  # fmt: skip
    assert r.code == 1 and r.err.count("\n") == 1, r.err
    assert "no quantized Conv or Gemm" in r.err and "--rounding nearest" in r.err
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".onnx") == []


def test_a_killed_run_leaves_no_model_and_a_rerun_resumes_from_the_finished_layers(
    fragile_model: FragileModel, tmp_path: Path
) -> None:
    out = tmp_path / "m.onnx"
    cache = tmp_path / "m.calib.json"
    args = [sys.executable, "-m", "edgeres", "quantize", str(fragile_model.fp32), "--calib",
            fragile_model.data, "--calib-size", "96", "--target", "cpu", "--rounding", "adaround",
            "--rounding-iterations", "150", "--no-progress", "-o", str(out)]  # fmt: skip
    # its own temporary folder: a killed process cannot remove what it keeps there
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    finished = 0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                entries = json.loads(cache.read_text()).get("learned_rounding", {})
            except (OSError, json.JSONDecodeError):  # not there yet (written atomically: never half)
                continue
            finished = max((len(e["layers"]) for e in entries.values()), default=0)
            if finished >= 3:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists()
    entries = json.loads(cache.read_text())["learned_rounding"]
    (entry,) = entries.values()
    kept = len(entry["layers"])
    assert 3 <= kept < 20
    killed_left = {p.name for p in tmp.iterdir()}
    assert any(name.startswith("edgeres-rounding-") for name in killed_left)
    # the rerun, the same command, learns only the layers the cache lacks
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{kept} from the cache" in done.stdout
    assert out.exists()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["m.calib.json", "m.onnx", "tmp"], left
    # the rerun's own temporary folders are gone; the killed run's are what SIGKILL leaves
    assert not {p.name for p in tmp.iterdir() if p.name.startswith("edgeres-")} - killed_left


@pytest.mark.parametrize("damage", ["not base64 !", "AAAA"])
def test_a_damaged_rounding_entry_in_the_cache_is_a_one_line_error(
    fragile_model: FragileModel, tmp_path: Path, run_cli, damage: str
) -> None:
    """Bits that are not base64, or too few for the layer's weights: refused, nothing written."""
    out = tmp_path / "m.onnx"
    base = ["quantize", str(fragile_model.fp32), "--target", "cpu", *FAST]
    r = run_cli(*base, "--calib", fragile_model.data, "--calib-size", "96", "-o", str(out))
    assert r.code == 0, r.err
    cache = tmp_path / "m.calib.json"
    data = json.loads(cache.read_text())
    (entry,) = data["learned_rounding"].values()
    first = next(iter(entry["layers"].values()))
    first["bits"] = damage
    cache.write_text(json.dumps(data))
    again = tmp_path / "again.onnx"
    r = run_cli(*base, "--calib-cache", str(cache), "-o", str(again))
    assert r.code == 1 and r.err.count("\n") == 1, r.err
    assert "learned rounding" in r.err and "run quantize again with --calib" in r.err
    assert not again.exists()


@pytest.fixture
def small_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The system's temporary folder on a 6 MiB tmpfs: room for the prepared models, not for the
    activations learned rounding keeps (a real full disk; needs permission to mount)."""
    import tempfile

    with mounted_tmpfs(tmp_path / "tmpfs", "6m") as mnt:
        monkeypatch.setattr(tempfile, "tempdir", str(mnt))
        yield mnt


def test_a_full_temporary_disk_is_one_line_and_leaves_nothing(
    fragile_model: FragileModel, tmp_path: Path, run_cli, small_tmp: Path
) -> None:
    out = tmp_path / "m.onnx"
    r = run_cli("quantize", str(fragile_model.fp32), "--calib", fragile_model.data, "--calib-size", "96",
                "--target", "cpu", *FAST, "-o", str(out))  # fmt: skip
    assert r.code == 1, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "No space left on device" in lines[0], r.err
    assert "edgeres-rounding-" in lines[0]  # where the activations are kept, so the user can move it
    assert not out.exists()
    assert list(small_tmp.iterdir()) == []  # the frontier's and the refinement's folders are gone


def test_two_runs_at_once_on_one_cache_both_finish_with_the_same_integers(
    fragile_model: FragileModel, tmp_path: Path
) -> None:
    """Each finished layer is a read-modify-write of the shared cache: runs racing on it may
    reuse each other's layers, but neither fails, and every layer ends up in the cache."""
    cache = tmp_path / "shared.calib.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start(name: str) -> subprocess.Popen[str]:
        args = [sys.executable, "-m", "edgeres", "quantize", str(fragile_model.fp32), "--calib",
                fragile_model.data, "--calib-size", "96", "--target", "cpu", "--calib-cache", str(cache),
                *FAST, "-o", str(tmp_path / name)]  # fmt: skip
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    runs = [start("a.onnx"), start("b.onnx")]
    for proc in runs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    a, b = (
        _integers(tmp_path / "a.onnx", fragile_model.fp32),
        _integers(tmp_path / "b.onnx", fragile_model.fp32),
    )
    assert a.keys() == b.keys() and len(a) == 20
    assert all(np.array_equal(a[k], b[k]) for k in a)
    (entry,) = json.loads(cache.read_text())["learned_rounding"].values()
    assert len(entry["layers"]) == 20
