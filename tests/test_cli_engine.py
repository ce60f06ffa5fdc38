"""`edgeres build-engine` and `edgeres convert-fp16` from the command line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edgeres.engine.fp16 import model_precision
from tests.conftest import CifarFolder
from tests.tiny_onnx import tiny_classifier

pytest.importorskip(
    "onnxconverter_common", reason="onnxconverter-common is not installed (pip install edgeres[dev])"
)


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory: pytest.TempPathFactory, resnet20_checkpoint: Path) -> Path:
    from edgeres import load_model
    from edgeres.export import export_onnx

    loaded = load_model(resnet20_checkpoint)
    path = tmp_path_factory.mktemp("onnx") / "r20.onnx"
    export_onnx(loaded.require_module(), loaded.meta, path)
    return path


def test_convert_fp16_writes_a_model_eval_can_run(
    run_cli, fp32_onnx: Path, cifar_train: CifarFolder, tmp_path: Path
) -> None:
    import onnx

    out = tmp_path / "r20.fp16.onnx"
    r = run_cli("convert-fp16", str(fp32_onnx), "-o", str(out))
    assert r.code == 0, r.err
    assert model_precision(onnx.load(str(out))) == "fp16"
    r = run_cli(
        "eval", str(out), "--data", str(cifar_train.path), "--size", "50", "--compare", str(fp32_onnx),
        "--no-progress",
    )  # fmt: skip
    assert r.code == 0, r.err
    agreement = float(r.out.split("top-1 agreement with the reference: ")[1].split("%")[0])
    assert agreement >= 90.0


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_build_engine_without_tensorrt_says_how_to_get_it(run_cli, fp32_onnx: Path, tmp_path: Path) -> None:
    r = run_cli("build-engine", str(fp32_onnx), "-o", str(tmp_path / "r.engine"))
    assert r.code == 1
    assert r.err.strip() == (
        'error: TensorRT is not installed: pip install "edgeres[tensorrt]" '
        "(on a Jetson, use JetPack's TensorRT)"
    )
    assert list(tmp_path.iterdir()) == []


def test_build_engine_checks_its_options_first(run_cli, fp32_onnx: Path) -> None:
    r = run_cli("build-engine", str(fp32_onnx), "--batch", "8:4:2")
    assert r.code == 2 and r.err.startswith("error:") and "MIN" in r.err


@pytest.mark.parametrize("command", ["build-engine", "convert-fp16"])
def test_a_pytorch_file_is_sent_to_export(run_cli, tmp_path: Path, command: str) -> None:
    import torch

    pt = tmp_path / "file.pt"
    torch.save({"weights": torch.zeros(2)}, pt)
    r = run_cli(command, str(pt))
    assert r.code == 2
    assert r.err.strip() == (
        f"error: '{pt}' is a PyTorch file, not ONNX: export it to ONNX first: edgeres export {pt}"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.pt"]


def test_int8_on_an_fp32_model_says_which_command_makes_one(run_cli, fp32_onnx: Path) -> None:
    r = run_cli("build-engine", str(fp32_onnx), "--int8")
    assert r.code == 2
    assert r.err.strip() == (
        f"error: --int8: an engine's INT8 comes from a Q/DQ model and {fp32_onnx} has none; make one with "
        f"`edgeres quantize {fp32_onnx} --calib DATA --target tensorrt` and build from it"
    )


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_int8_on_a_qdq_model_is_a_no_op_said_once(run_cli, tmp_path: Path) -> None:
    model = tiny_classifier(tmp_path / "m.int8.onnx", qdq=True)
    with_flag = run_cli("build-engine", str(model), "--int8")
    without = run_cli("build-engine", str(model))
    note = f"--int8: nothing to add, the INT8 comes from the Q/DQ nodes of {model}"
    assert with_flag.err.splitlines()[0] == note
    assert with_flag.err.splitlines()[1:] == without.err.splitlines()  # then the same build (no TensorRT)
    assert (with_flag.code, without.code) == (1, 1) and note not in without.err


@pytest.mark.parametrize(("batch", "profile"), [("1,8,32", "1:1:32"), ("8,1,32", "1:8:32"), ("4", "4:4:4")])
def test_batch_takes_bench_s_comma_list(batch: str, profile: str) -> None:
    from edgeres.engine.options import EngineOptions

    assert str(EngineOptions.from_strings(batch=batch).batch) == profile


def test_a_bad_comma_list_is_a_usage_error(run_cli, fp32_onnx: Path) -> None:
    r = run_cli("build-engine", str(fp32_onnx), "--batch", "1,x")
    assert (r.code, r.err.strip()) == (
        2,
        "error: batch sizes '1,x' must be positive whole numbers separated by commas",
    )


def test_a_pickle_named_onnx_is_a_bad_input_not_a_bad_call(run_cli, tmp_path: Path) -> None:
    import torch

    fake = tmp_path / "model.onnx"
    torch.save({"weights": torch.zeros(2)}, fake)
    r = run_cli("convert-fp16", str(fake))
    assert r.code == 1 and r.err.strip().startswith(f"error: '{fake}' is a PyTorch file, not ONNX")
