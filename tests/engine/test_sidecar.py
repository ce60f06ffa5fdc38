"""The engine sidecar: written atomically, read back whole, and compared with this TensorRT and GPU."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from edgeres.engine.sidecar import (
    EngineSidecar,
    check_compatible,
    gpu_info,
    read_sidecar,
    sha256_file,
    sidecar_path,
    write_sidecar,
)
from edgeres.errors import EdgeresError
from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, ModelMeta, Preprocessing

META = ModelMeta(
    arch="resnet20",
    num_classes=3,
    class_names=("cat", "dog", "frog"),
    preprocessing=Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD),
)


def _sidecar(**changes: object) -> EngineSidecar:
    fields: dict[str, object] = dict(
        tensorrt_version="10.3.0.30",
        gpu_name="Orin",
        compute_capability="8.7",
        precision="int8+fp16",
        input_name="input",
        output_name="logits",
        profile={"min": [1, 3, 32, 32], "opt": [8, 3, 32, 32], "max": [32, 3, 32, 32]},
        onnx_path="/models/r20.int8.onnx",
        onnx_sha256="ab" * 32,
        options={"fp16": True, "batch": "1:8:32"},
        built_at="2026-01-01T00:00:00+00:00",
        build_seconds=12.5,
        edgeres_version="0.1.0",
        meta=META,
        dla_core=None,
    )
    fields.update(changes)
    return EngineSidecar(**fields)  # type: ignore[arg-type]


def test_write_and_read_back(tmp_path: Path) -> None:
    engine = tmp_path / "r20.engine"
    engine.write_bytes(b"plan")
    path = write_sidecar(engine, _sidecar())
    assert path == sidecar_path(engine) == tmp_path / "r20.engine.json"
    data = json.loads(path.read_text())
    assert data["format"] == "edgeres-engine" and data["version"] == 1
    assert data["meta"]["class_names"] == ["cat", "dog", "frog"] and data["profile"]["max"] == [32, 3, 32, 32]
    back = read_sidecar(engine)
    assert back == _sidecar()
    assert back is not None and back.batch_range == (1, 32) and back.meta == META
    assert not list(tmp_path.glob(".*tmp"))


def test_missing_and_damaged_sidecars(tmp_path: Path) -> None:
    engine = tmp_path / "r20.engine"
    assert read_sidecar(engine) is None
    side = sidecar_path(engine)
    for text in ("{not json", json.dumps({"format": "other"}), json.dumps({"format": "edgeres-engine"})):
        side.write_text(text)
        with pytest.raises(EdgeresError, match="damaged") as info:
            read_sidecar(engine)
        assert "\n" not in str(info.value)
    newer = {**_sidecar().to_dict(), "version": 99}
    side.write_text(json.dumps(newer))
    with pytest.raises(EdgeresError, match="newer edgeres"):
        read_sidecar(engine)


def test_same_device_is_compatible(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edgeres"):
        assert check_compatible(_sidecar(), "10.3.0.30", "Orin", "8.7") is None
        check_compatible(_sidecar(), "10.3.0", "Orin", "87")  # build number and sm spelling do not matter
        check_compatible(_sidecar(tensorrt_version="11.0"), "11.0.0.1", "Orin", "sm_87")
        check_compatible(_sidecar(gpu_name=None, compute_capability=None), "10.3.0", "Orin", "8.7")
    assert caplog.records == []  # not even a warning


def test_another_gpu_of_the_same_sm_runs_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edgeres"):
        check_compatible(_sidecar(), "10.3.0", "Orin NX", "8.7", engine="r20.engine")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "engine r20.engine was tuned on Orin and runs on Orin NX (same sm 8.7)"
    )
    with pytest.raises(EdgeresError, match=r"built for TensorRT 10\.3"):  # the sm still decides
        check_compatible(_sidecar(), "10.3.0", "Orin", "8.6")


def test_other_tensorrt_or_gpu_generation_is_refused() -> None:
    with pytest.raises(EdgeresError) as info:
        check_compatible(_sidecar(), "11.0.0.16", "NVIDIA H100 80GB HBM3", "9.0", engine="r20.engine")
    assert str(info.value) == (
        "engine r20.engine was built for TensorRT 10.3 on Orin (sm 8.7); "
        "this is TensorRT 11.0 on NVIDIA H100 80GB HBM3 (sm 9.0): rebuild it on this device with "
        "`edgeres build-engine`"
    )
    with pytest.raises(EdgeresError, match=r"TensorRT 10\.3 on Orin \(sm 8\.7\); this is TensorRT 10\.3 on"):
        check_compatible(_sidecar(), "10.3.0.30", "NVIDIA GeForce RTX 3090", "8.6")
    with pytest.raises(EdgeresError, match=r"this is TensorRT 10\.4 on Orin"):
        check_compatible(_sidecar(), "10.4.0", "Orin", "8.7")
    with pytest.raises(EdgeresError, match=r"TensorRT 10\.3\.1"):
        check_compatible(_sidecar(tensorrt_version="10.3.1"), "10.3.0", None, None)


def test_other_gpu_model_of_the_same_generation_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    sidecar = _sidecar(gpu_name="NVIDIA A100-SXM4-40GB", compute_capability="8.0")
    with caplog.at_level("WARNING", logger="edgeres.engine.sidecar"):
        check_compatible(sidecar, "10.3.0", "NVIDIA A100-PCIE-40GB", "8.0", engine="r20.engine")
    assert "may be slower" in caplog.text and "A100-PCIE" in caplog.text


def test_sha256_and_gpu_info(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    name, cc = gpu_info()
    assert (name is None) == (cc is None)
