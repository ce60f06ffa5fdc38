"""Non-finite settings are refused at once (exit 2); damaged calibration caches as damaged (exit 1)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeres.errors import EdgeresError, UsageError
from edgeres.quantize.cache import load_cache
from edgeres.quantize.settings import CalibrationSettings
from edgeres.quantize.workflow import QuantizeOptions, quantize

REPO = Path(__file__).resolve().parents[2]


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_cli_refuses_a_max_drop_that_is_not_a_finite_number(
    value: str, resnet20_checkpoint: Path, tmp_path: Path
) -> None:
    before = files_under(resnet20_checkpoint.parent)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["quantize", str(resnet20_checkpoint), "--calib", "digits", "--eval", "digits"]
    args += ["-o", str(tmp_path / "q.onnx"), "--max-drop", value]
    r = subprocess.run(
        [sys.executable, "-m", "edgeres", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --max-drop must be a finite number"), r.stderr
    assert value in lines[0]
    assert list(tmp_path.iterdir()) == [] and files_under(resnet20_checkpoint.parent) == before


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.5])
def test_options_refuse_a_max_drop_that_is_not_a_finite_number(value: float) -> None:
    with pytest.raises(UsageError, match="--max-drop must be a finite number") as err:
        QuantizeOptions(calib="digits", eval_data="digits", max_drop=value)
    assert err.value.exit_code == 2
    QuantizeOptions(calib="digits", eval_data="digits", max_drop=0.0)  # zero is fine


@pytest.mark.parametrize(("name", "value"), [("calib_size", 0), ("eval_size", -3), ("threads", 0)])
def test_options_refuse_counts_below_one(name: str, value: int) -> None:
    with pytest.raises(UsageError, match=f"--{name.replace('_', '-')} must be a whole number"):
        QuantizeOptions(calib="digits", **{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, -5.0, 100.5, 1e9])
def test_settings_refuse_a_percentile_outside_its_range(value: float) -> None:
    with pytest.raises(UsageError, match="percentile must be a number from 50 to 100") as err:
        CalibrationSettings(percentile=value)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_cli_refuses_a_nan_percentile(run_cli, resnet20_checkpoint: Path, tmp_path: Path) -> None:
    r = run_cli("quantize", str(resnet20_checkpoint), "--calib", "digits", "-o", str(tmp_path / "q.onnx"),
                "--percentile", "nan")  # fmt: skip
    assert (
        r.code == 2
        and r.err.strip() == "error: percentile must be a number from 50 to 100 (e.g. 99.999), got nan"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def calibrated(fragile_model, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real FP32 ONNX model and the calibration cache edgeres wrote for it."""
    out = tmp_path_factory.mktemp("calibrated")
    opts = QuantizeOptions(calib=fragile_model.data, target="cpu", calib_size=16, progress=False)
    report = quantize(fragile_model.fp32, out / "q.onnx", opts)
    return report.fp32_onnx, report.cache


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hi", "Infinity", "a range of tensor {name} that is not finite: [{lo}, inf]"),
        ("lo", "-Infinity", "a range of tensor {name} that is not finite: [-inf, {hi}]"),
        ("hi", "NaN", "a range of tensor {name} that is not finite: [{lo}, nan]"),
        ("hi", "1e38", "an absurd range of tensor {name}: 1e+38 is beyond +-65504"),
        ("lo", "-70000.0", "an absurd range of tensor {name}: 70000.0 is beyond +-65504"),
        ("lo", "1e5", "an empty range of tensor {name}: lo 100000.0 above hi {hi}"),
    ],
)
def test_a_cache_with_an_impossible_range_is_refused_as_damaged(
    run_cli, calibrated: tuple[Path, Path], tmp_path: Path, field: str, value: str, message: str
) -> None:
    fp32, cache = calibrated
    data = json.loads(cache.read_text())
    entry = data["tensors"][3]
    name, lo, hi = entry["name"], entry["lo"], entry["hi"]
    text = cache.read_text()  # edited as a person would: one number changed in the file edgeres wrote
    at = text.index(json.dumps(name))
    old = f'"{field}": {json.dumps(entry[field])}'
    at = text.index(old, at)
    damaged = tmp_path / "damaged.calib.json"
    damaged.write_text(text[:at] + f'"{field}": {value}' + text[at + len(old) :])
    before = damaged.read_bytes()

    r = run_cli("quantize", str(fp32), "--calib-cache", str(damaged), "--target", "cpu",
                "-o", str(tmp_path / "q.onnx"), "--no-progress")  # fmt: skip
    assert r.code == 1, r.err
    line = r.err.strip()
    assert "\n" not in line and line.startswith(f"error: calibration cache {damaged} is malformed")
    assert message.format(name=name, lo=lo, hi=hi) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.calib.json"]  # no model written
    assert damaged.read_bytes() == before
    with pytest.raises(EdgeresError) as err:
        load_cache(damaged)
    assert not isinstance(err.value, UsageError)


def test_the_limit_is_float16s_largest_value(calibrated: tuple[Path, Path], tmp_path: Path) -> None:
    from edgeres.quantize.cache import RANGE_LIMIT

    _, cache = calibrated
    assert RANGE_LIMIT == 65504.0
    data = json.loads(cache.read_text())
    data["tensors"][0]["lo"], data["tensors"][0]["hi"] = -65504.0, 65504.0  # at the limit: accepted
    path = tmp_path / "edge.json"
    path.write_text(json.dumps(data))
    ranges, _ = load_cache(path)
    assert ranges[data["tensors"][0]["name"]].absmax == 65504.0


def test_calibration_never_writes_a_cache_it_would_refuse(tmp_path: Path) -> None:
    from edgeres.quantize.cache import save_cache
    from edgeres.quantize.collect import CalibrationResult
    from edgeres.quantize.ranges import TensorRange

    result = CalibrationResult(
        {"t": TensorRange("t", 0.0, 1e6)}, 4, "minmax", CalibrationSettings(), 0.1, 1.0
    )
    with pytest.raises(
        EdgeresError, match=r"calibration gave an absurd range of tensor t: 1000000\.0"
    ) as err:
        save_cache(tmp_path / "c.json", result, "a" * 64, "b" * 64)
    assert err.value.exit_code == 1 and list(tmp_path.iterdir()) == []
