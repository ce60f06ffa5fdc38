"""Calibration cache: exact round trip, tied to its model, clear errors for anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeres import __version__
from edgeres.errors import EdgeresError, UsageError
from edgeres.quantize.cache import CACHE_VERSION, load_cache, model_sha256, save_cache
from edgeres.quantize.collect import CalibrationResult
from edgeres.quantize.ranges import TensorRange
from edgeres.quantize.settings import CalibrationSettings

MODEL = "a" * 64
CALIB = "c" * 64


def result() -> CalibrationResult:
    ranges = {
        "input": TensorRange("input", -2.1179039478302, 2.640000104904175),
        "/relu/Relu_output_0": TensorRange("/relu/Relu_output_0", 0.0, 1 / 3),
        "odd name ü": TensorRange("odd name ü", -1e-30, 5e3),
    }
    settings = CalibrationSettings("entropy", num_bins=1024, batch_size=16)
    return CalibrationResult(ranges, 512, "entropy", settings, 12.5, 800.0)


def test_round_trip_is_exact(tmp_path: Path) -> None:
    path = save_cache(tmp_path / "calib.json", result(), MODEL, CALIB)
    ranges, info = load_cache(path, model_hash=MODEL, calib_hash=CALIB)
    assert ranges == result().ranges and list(ranges) == list(result().ranges)
    assert (info.method, info.num_images, info.settings) == ("entropy", 512, result().settings)
    assert (info.model_hash, info.calib_hash, info.edgeres_version) == (MODEL, CALIB, __version__)
    assert info.version == CACHE_VERSION
    data = json.loads(path.read_text())
    assert data["tensors"][1] == {"name": "/relu/Relu_output_0", "lo": 0.0, "hi": 1 / 3}
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_another_model_is_refused(tmp_path: Path) -> None:
    path = save_cache(tmp_path / "calib.json", result(), MODEL, CALIB)
    with pytest.raises(UsageError, match=r"was made for another model \(hash aaaaaaaaaaaa") as err:
        load_cache(path, model_hash="b" * 64)
    assert "delete it or run calibration again without --calib-cache" in str(err.value)
    with pytest.raises(UsageError, match="other calibration images"):
        load_cache(path, model_hash=MODEL, calib_hash="d" * 64)
    load_cache(path)  # no hash given: nothing to check


def test_model_hash_is_the_file_sha256(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"abc")
    assert model_sha256(model) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(EdgeresError, match="cannot read model") as err:
        model_sha256(tmp_path / "missing.onnx")
    assert err.value.exit_code == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "not an edgeres calibration cache"),
        ('{"format": "edgeres-calibration-cache"}', "no format version"),
        ("DROP:settings", "missing 'settings'"),
        ("DROP:tensors", "missing 'tensors'"),
        ("BAD:lo", "range bound 'x' is not a number"),
        ("BAD:order", "empty range of tensor input: lo 3.0 above hi 1.0"),
        ("BAD:settings", "unknown calibration method"),
        ("BAD:twice", "appears twice"),
    ],
)
def test_malformed_caches_say_so(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "calib.json"
    save_cache(path, result(), MODEL, CALIB)
    data = json.loads(path.read_text())
    if content.startswith("DROP:"):
        del data[content[5:]]
        content = json.dumps(data)
    elif content == "BAD:lo":
        data["tensors"][0]["lo"] = "x"
        content = json.dumps(data)
    elif content == "BAD:order":
        data["tensors"][0]["lo"], data["tensors"][0]["hi"] = 3.0, 1.0
        content = json.dumps(data)
    elif content == "BAD:settings":
        data["settings"]["method"] = "kl"
        content = json.dumps(data)
    elif content == "BAD:twice":
        data["tensors"].append(data["tensors"][0])
        content = json.dumps(data)
    path.write_text(content)
    with pytest.raises(EdgeresError, match=message) as err:
        load_cache(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 1  # a damaged file, not a wrongly called command


def test_newer_format_and_missing_file(tmp_path: Path) -> None:
    path = save_cache(tmp_path / "calib.json", result(), MODEL, CALIB)
    data = json.loads(path.read_text())
    data["version"] = CACHE_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(EdgeresError, match="newer than this edgeres reads") as err:
        load_cache(path)
    assert err.value.exit_code == 1
    with pytest.raises(UsageError, match="does not exist"):
        load_cache(tmp_path / "none.json")


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(EdgeresError, match="does not exist"):
        save_cache(tmp_path / "no" / "calib.json", result(), MODEL, CALIB)
    bad = result()
    object.__setattr__(bad, "ranges", {"x": object()})  # not a TensorRange: fails mid-way
    with pytest.raises(AttributeError):
        save_cache(tmp_path / "calib.json", bad, MODEL, CALIB)
    assert list(tmp_path.iterdir()) == []
