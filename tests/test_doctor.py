"""The doctor library: its rows and verdicts, the built-in model, and (with TensorRT and a GPU) engines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edgeres.doctor import Check, DoctorReport, DoctorSettings, format_table
from edgeres.doctor.roundtrip import compare, compared_check
from edgeres.doctor.run import check_keep_folder
from edgeres.errors import TENSORRT_INSTALL, EdgeresError, UsageError


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def test_compare_gives_the_largest_difference_and_the_top1_agreement() -> None:
    want = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]], np.float32)
    got = want.copy()
    got[3] = [0.0, 1.5, 0.0]  # one of four flips its class, by 1.5 at most
    assert compare(got, want) == (pytest.approx(1.5), 0.75)
    with pytest.raises(EdgeresError, match="cannot be compared"):
        compare(got[:2], want)


def test_an_agreement_below_the_minimum_fails_the_row() -> None:
    want = np.eye(4, dtype=np.float32)
    got = want.copy()
    got[0] = [0, 2, 0, 0]
    passed = compared_check("x", got, want, 0.75, against="torch")
    failed = compared_check("x", got, want, 0.76, against="torch")
    assert (passed.status, passed.agreement, passed.is_failure) == ("ok", 0.75, False)
    assert (failed.status, failed.is_failure) == ("failed", True)
    assert "agreement 0.750 with torch (below the 0.76 asked for), max |diff| 2" in failed.detail


def test_only_failed_or_required_missing_checks_fail_the_report() -> None:
    rows = (
        Check("torch", "ok", "2.13", required=True),
        Check("tensorrt", "missing", "not installed"),
        Check("tensorrt fp32", "skipped", "needs TensorRT"),
    )
    report = DoctorReport(rows, {}, {}, "0", 1.0)
    assert report.ok and report.failures == ()
    assert report.summary().startswith("all checks that can run here passed (1 ok, 1 missing, 1 skipped")
    required = DoctorReport(
        (*rows[:1], Check("tensorrt", "missing", "not installed", required=True)), {}, {}, "0", 1
    )
    assert not required.ok and required.summary() == "1 check failed: tensorrt: not installed"
    record = required.to_dict()
    assert (record["kind"], record["schema"], record["ok"]) == ("doctor", 1, False)
    assert record["checks"][1]["is_failure"] is True
    table = format_table(required.checks).splitlines()
    assert table[0].split() == ["check", "status", "detail"] and table[3].split()[:2] == [
        "tensorrt",
        "missing",
    ]


def test_settings_check_their_values() -> None:
    s = DoctorSettings(min_agreement={"int8": 0.8})
    assert s.min_agreement == {"fp32": 0.99, "fp16": 0.99, "int8": 0.8, "int8-cpu": 0.5}
    with pytest.raises(UsageError, match="unknown agreement key"):
        DoctorSettings(min_agreement={"int4": 0.5})
    with pytest.raises(UsageError, match="a number from 0"):
        DoctorSettings(min_agreement={"fp32": -0.1})
    with pytest.raises(UsageError, match="images must be"):
        DoctorSettings(images=0)
    with pytest.raises(UsageError, match="nothing to keep with --quick"):
        DoctorSettings(quick=True, keep=Path("kept"))


def test_keep_takes_a_new_or_empty_folder_only(tmp_path: Path) -> None:
    check_keep_folder(tmp_path / "new")
    check_keep_folder(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is not empty"):
        check_keep_folder(tmp_path)
    with pytest.raises(UsageError, match="is a file"):
        check_keep_folder(tmp_path / "f")


def test_the_built_in_model_predicts_many_classes(tmp_path: Path) -> None:
    from edgeres.doctor.model import build_reference

    ref = build_reference(tmp_path, images=64, seed=0)
    assert ref.inputs.shape == (64, 3, 32, 32) and ref.logits.shape == (64, 10)
    assert ref.classes_predicted >= 5  # an agreement on one predicted class would prove nothing
    margins = np.diff(np.sort(ref.logits, axis=1)[:, -2:], axis=1)
    assert float(np.median(margins)) > 0.5 and float(margins.min()) > 0.1  # and none is near a tie
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz", "inputs.npy", "resnet20.pt"]
    assert np.array_equal(np.load(tmp_path / "inputs.npy"), ref.inputs)


@pytest.mark.tensorrt
@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None or not _has_cuda(), reason="needs TensorRT and a CUDA GPU"
)
def test_engines_build_run_and_agree_with_onnxruntime(tmp_path: Path) -> None:
    from edgeres.doctor import run_doctor

    report = run_doctor(DoctorSettings(require_tensorrt=True, keep=tmp_path / "kept"))
    assert report.ok, report.summary()
    for precision, least in (("fp32", 0.99), ("fp16", 0.99), ("int8", 0.9)):
        row = report.check(f"tensorrt {precision}")
        assert row.status == "ok", row.detail
        assert row.agreement is not None and least <= row.agreement <= 1
        assert row.latency_ms is not None and row.latency_ms > 0 and row.seconds is not None
        assert (tmp_path / "kept" / f"resnet20.{precision}.engine").is_file()
    assert report.seconds < 120


def test_package_rows_say_what_to_install_and_which_are_required() -> None:
    from dataclasses import replace

    from edgeres.doctor.versions import gpu_check, package_checks, tensorrt_check
    from edgeres.sysinfo import collect

    here = collect()
    info = replace(here, libraries={**here.libraries, "onnx": None}, cuda_devices=(), jetson={"l4t": "R36.4"})
    rows = {c.name: c for c in package_checks(info)}
    assert rows["onnx"].status == "missing" and rows["onnx"].is_failure
    assert rows["onnx"].detail == "not installed: pip install onnx"
    assert rows["torch"].status == "ok" and rows["onnxruntime"].status == "ok"
    assert "CPUExecutionProvider" in rows["onnxruntime"].detail

    gpu = gpu_check(info, required=False)
    assert gpu.status == "missing" and not gpu.is_failure and "no CUDA device visible to torch" in gpu.detail
    assert gpu_check(info, required=True).is_failure
    if importlib.util.find_spec("tensorrt") is None:
        trt = tensorrt_check(info, required=False)
        assert trt.status == "missing" and not trt.is_failure
        assert trt.detail.startswith(f"TensorRT not installed: {TENSORRT_INSTALL}")
        assert "--system-site-packages" in trt.detail  # on a Jetson, the venv must see JetPack's
        # Package metadata without an importable module: a broken install fails, required or not.
        broken = tensorrt_check(
            replace(info, libraries={**info.libraries, "tensorrt": "10.3.0"}), required=False
        )
        assert broken.status == "failed" and broken.is_failure
        assert broken.detail.startswith("10.3.0 is installed but does not import (ModuleNotFoundError")
