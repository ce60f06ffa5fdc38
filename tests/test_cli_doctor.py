"""`edgeres doctor` from the command line, run for real: the model is built, exported, quantized and run."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
without_tensorrt = pytest.mark.skipif(
    HAS_TENSORRT, reason="checks what doctor says where TensorRT is missing"
)
TRT_HINT = 'TensorRT not installed: pip install "edgeres[tensorrt]" (on a Jetson, use JetPack\'s TensorRT)'


def _row(table: str, name: str) -> str:
    """The table line of check ``name``."""
    lines = [line for line in table.splitlines() if line.startswith(f"{name}  ")]
    assert len(lines) == 1, table
    return lines[0]


def _doctor_temporaries() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("edgeres-doctor-*")}


@pytest.mark.slow
@without_tensorrt
def test_doctor_runs_the_cpu_round_trip_and_says_what_to_install(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from edgeres import load_model
    from edgeres.runners import make_runner

    monkeypatch.chdir(tmp_path)
    before = _doctor_temporaries()
    r = run_cli("doctor", "--json", "doctor.json", "--keep", "kept")
    assert r.code == 0, r.err
    assert "error" not in r.err
    assert r.out.strip().splitlines()[-1].startswith("all checks that can run here passed")
    assert TRT_HINT in _row(r.out, "tensorrt") and " missing " in _row(r.out, "tensorrt")
    for name in ("tensorrt fp32", "tensorrt fp16", "tensorrt int8"):
        assert " skipped " in _row(r.out, name) and TRT_HINT in _row(r.out, name)
    for name in ("torch", "onnx", "onnxruntime", "model", "export onnx", "quantize int8"):
        assert " ok " in _row(r.out, name)

    record = json.loads((tmp_path / "doctor.json").read_text())
    assert (record["kind"], record["schema"], record["ok"]) == ("doctor", 1, True)
    checks = {c["name"]: c for c in record["checks"]}
    assert checks["tensorrt"]["status"] == "missing" and not checks["tensorrt"]["is_failure"]
    rows = (
        "onnxruntime fp32",
        "onnxruntime int8 (cpu)",
        "onnxruntime int8 (tensorrt)",
        "onnxruntime int8 (openvino)",
    )
    for name in rows:
        c = checks[name]
        assert c["status"] == "ok" and " ok " in _row(r.out, name)
        assert c["min_agreement"] <= c["agreement"] <= 1 and c["latency_ms"] > 0
        assert f"agreement {c['agreement']:.3f} with torch" in _row(r.out, name)
    assert (
        checks["onnxruntime fp32"]["max_abs_diff"] < 1e-3 < checks["onnxruntime int8 (cpu)"]["max_abs_diff"]
    )

    # The numbers come from real runs: the kept models, rerun here on the same images, give them again.
    kept = tmp_path / "kept"
    assert sorted(p.name for p in kept.iterdir()) == [
        "calib.npz",
        "inputs.npy",
        "resnet20.fp32.onnx",
        "resnet20.int8.calib.json",
        "resnet20.int8.cpu.onnx",
        "resnet20.int8.openvino.onnx",
        "resnet20.int8.tensorrt.onnx",
        "resnet20.pt",
    ]
    loaded = load_model(kept / "resnet20.pt")
    x = np.load(kept / "inputs.npy")
    assert x.shape == (64, 3, 32, 32) and x.dtype == np.float32
    with torch.no_grad():
        want = loaded.require_module().eval()(torch.from_numpy(x)).numpy()
    for name, file in (("onnxruntime fp32", "fp32"), ("onnxruntime int8 (cpu)", "int8.cpu")):
        with make_runner(kept / f"resnet20.{file}.onnx", "onnxruntime") as runner:
            got = runner.infer(x)
        assert checks[name]["agreement"] == pytest.approx(float((got.argmax(1) == want.argmax(1)).mean()))
        assert checks[name]["max_abs_diff"] == pytest.approx(float(np.abs(got - want).max()), rel=1e-3)
    assert len(np.unique(want.argmax(1))) >= 5  # the predictions vary: agreement is not trivially 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doctor.json", "kept"]
    assert _doctor_temporaries() == before  # the work folder is gone


@without_tensorrt
def test_require_tensorrt_fails_with_one_line(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_cli("doctor", "--quick", "--require-tensorrt")
    assert r.code == 1
    assert " missing " in _row(r.out, "tensorrt") and " skipped " in _row(r.out, "round trip")
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert TRT_HINT in lines[0] and "Traceback" not in r.err
    assert list(tmp_path.iterdir()) == []


def test_quick_checks_versions_only(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_cli("doctor", "--quick", "--json", "d.json")
    assert r.code == 0, r.err
    names = [c["name"] for c in json.loads((tmp_path / "d.json").read_text())["checks"]]
    assert names[:3] == ["edgeres", "python", "torch"] and names[-1] == "round trip"
    assert "onnxruntime fp32" not in names and " skipped " in _row(r.out, "round trip")


@pytest.mark.slow
def test_a_planted_failure_fails_the_run(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeres.doctor.run as doctor_run

    # An agreement no comparison can reach: the FP32 row must fail and the command exit 1.
    monkeypatch.setattr(
        doctor_run, "DEFAULT_MIN_AGREEMENT", {**doctor_run.DEFAULT_MIN_AGREEMENT, "fp32": 1.5}
    )
    monkeypatch.chdir(tmp_path)
    r = run_cli("doctor", "--json", "doctor.json")
    assert r.code == 1
    assert " failed " in _row(r.out, "onnxruntime fp32") and "below the 1.50 asked for" in r.out
    lines = r.err.strip().splitlines()
    assert lines[-1].startswith("error: 1 check failed: onnxruntime fp32: agreement 1.000 with torch")
    assert sum(line.startswith("error") for line in lines) == 1
    record = json.loads((tmp_path / "doctor.json").read_text())  # written even when a check failed
    assert record["ok"] is False
    assert [c["name"] for c in record["checks"] if c["is_failure"]] == ["onnxruntime fp32"]


def test_keep_refuses_a_folder_with_files(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept").mkdir()
    mine = tmp_path / "kept" / "mine.onnx"
    mine.write_bytes(b"the user's")
    r = run_cli("doctor", "--keep", "kept")
    assert r.code == 2
    assert r.err.strip() == "error: --keep folder 'kept' is not empty; give a new or empty folder"
    assert r.out == "" and mine.read_bytes() == b"the user's"
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["mine.onnx"]


def test_json_into_a_missing_folder_fails_before_the_checks(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_cli("doctor", "--json", "nowhere/doctor.json")
    assert r.code == 1
    assert r.err.count("\n") == 1 and r.err.startswith("error: ") and "nowhere" in r.err
    assert r.out == "" and list(tmp_path.iterdir()) == []
