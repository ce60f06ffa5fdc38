"""Runners: torch and ONNX Runtime agree, make_runner picks the backend, bad models are refused."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edgeres.errors import EdgeresError, MissingDependencyError, UsageError
from edgeres.export.fold import randomize_batchnorm
from edgeres.export.onnx_export import export_onnx
from edgeres.metadata import ModelMeta, Preprocessing
from edgeres.models import get_model
from edgeres.runners import OnnxRuntimeRunner, Runner, TorchRunner, make_runner

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = get_model("resnet20", num_classes=10)
    randomize_batchnorm(net)
    return net.eval()


@pytest.fixture(scope="module")
def onnx_path(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    meta = ModelMeta(arch="resnet20", num_classes=10, preprocessing=Preprocessing(input_size=(32, 32)))
    out = tmp_path_factory.mktemp("onnx") / "resnet20.onnx"
    return export_onnx(model, meta, out, exporter="torchscript", verify=False).path


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32), dtype=np.float32)


def test_torch_and_onnxruntime_agree(model: torch.nn.Module, onnx_path: Path) -> None:
    with TorchRunner(model, threads=1) as t, OnnxRuntimeRunner(onnx_path, threads=1) as o:
        assert (t.name, o.name) == ("torch", "onnxruntime")
        assert t.input_name == o.input_name == "input"
        assert t.input_shape == (None, 3, None, None)
        assert o.input_shape == (None, 3, 32, 32)
        assert (t.device, t.precision, o.device, o.precision) == ("cpu", "fp32", "cpu", "fp32")
        assert o.active_providers == ["CPUExecutionProvider"]
        for n in (1, 5):
            a, b = t.infer(_batch(n, n)), o.infer(_batch(n, n))
            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (n, 10)
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
        # float64 input is accepted and cast
        np.testing.assert_allclose(o.infer(_batch(2).astype(np.float64)), o.infer(_batch(2)), atol=1e-6)


def test_runner_needs_activation(model: torch.nn.Module, onnx_path: Path) -> None:
    for runner in (TorchRunner(model), OnnxRuntimeRunner(onnx_path)):
        with pytest.raises(EdgeresError, match="not active"):
            runner.infer(_batch(1))
        with runner:
            assert runner.is_active
        assert not runner.is_active
        assert "inactive" in repr(runner)


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        (np.zeros((3, 32, 32), np.float32), "4-D NCHW"),
        (np.zeros((1, 3, 16, 16), np.float32), "does not fit"),
        (np.zeros((1, 3, 32, 32), np.int64), "floats"),
    ],
)
def test_bad_batches(onnx_path: Path, batch: np.ndarray, match: str) -> None:
    with OnnxRuntimeRunner(onnx_path) as runner, pytest.raises(UsageError, match=match):
        runner.infer(batch)


def test_torch_runner_leaves_module_as_it_was(model: torch.nn.Module) -> None:
    model.train()
    threads = torch.get_num_threads()
    try:
        with TorchRunner(model, threads=1) as runner:
            assert not model.training and torch.get_num_threads() == 1
            runner.infer(_batch(2))
        assert model.training and torch.get_num_threads() == threads
    finally:
        model.eval()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"precision": "fp16"}, UsageError, "fp16 needs a CUDA device"),
        ({"precision": "int4"}, UsageError, "unknown precision"),
        ({"device": "tpu"}, UsageError, "device"),
        ({"threads": 0}, UsageError, "threads"),
    ],
)
def test_torch_runner_bad_options(model: torch.nn.Module, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TorchRunner(model, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_torch_runner_cuda_missing(model: torch.nn.Module) -> None:
    with pytest.raises(EdgeresError, match="CUDA is not available"):
        TorchRunner(model, device="cuda")


def test_make_runner_picks_backend(
    model: torch.nn.Module, onnx_path: Path, resnet20_checkpoint: Path
) -> None:
    assert isinstance(make_runner(model), TorchRunner)
    assert isinstance(make_runner(onnx_path), OnnxRuntimeRunner)
    assert isinstance(make_runner(str(onnx_path), "onnxruntime", threads=2), OnnxRuntimeRunner)
    runner = make_runner(resnet20_checkpoint)
    assert isinstance(runner, TorchRunner)
    with runner:
        assert runner.infer(_batch(2)).shape == (2, 10)


def test_make_runner_refuses_mismatches(model: torch.nn.Module, onnx_path: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown backend"):
        make_runner(onnx_path, "tflite")
    with pytest.raises(UsageError, match="torch backend"):
        make_runner(model, "onnxruntime")
    with pytest.raises(UsageError, match=r"not 'resnet20\.onnx'"):
        make_runner(onnx_path, "torch")
    with pytest.raises(UsageError, match="does not exist"):
        make_runner(tmp_path / "missing.onnx")
    with pytest.raises(UsageError, match="cannot run a int"):
        make_runner(42)  # type: ignore[arg-type]


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
@pytest.mark.parametrize("suffix", [".engine", ".plan"])
def test_tensorrt_missing_is_clear(tmp_path: Path, suffix: str) -> None:
    engine = tmp_path / f"model{suffix}"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(MissingDependencyError) as info:
        make_runner(engine)
    text = str(info.value)
    assert "TensorRT" in text and 'pip install "edgeres[tensorrt]"' in text and "JetPack" in text
    assert "\n" not in text and info.value.exit_code == 1


def test_onnxruntime_missing_provider(onnx_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider installed")
    with pytest.raises(MissingDependencyError, match="onnxruntime-gpu"):
        OnnxRuntimeRunner(onnx_path, providers=["cuda"])
    with pytest.raises(MissingDependencyError):
        make_runner(onnx_path, device="cuda")


def _model_with_inputs(*inputs: tuple[str, list[int | str]]) -> onnx.ModelProto:
    value_infos = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    nodes = [helper.make_node("ReduceSum", [inputs[0][0]], ["y"], keepdims=0)]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", value_infos, [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    "inputs",
    [
        [("a", ["N", 3, 8, 8]), ("b", ["N", 3, 8, 8])],
        [("features", ["N", 64])],
    ],
)
def test_onnxruntime_refuses_non_classifier(tmp_path: Path, inputs: list) -> None:
    path = tmp_path / "other.onnx"
    onnx.save(_model_with_inputs(*inputs), str(path))
    with pytest.raises(
        UsageError, match=r"model other\.onnx is not an image classifier: it has inputs"
    ) as info:
        OnnxRuntimeRunner(path).activate()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"garbage, not protobuf", b""])
def test_onnxruntime_refuses_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(EdgeresError, match="not a valid ONNX model") as info, make_runner(path):
        pass
    assert "\n" not in str(info.value)


def test_import_is_light() -> None:
    code = (
        "import sys, edgeres.runners, edgeres.export; "
        "heavy = [m for m in ('torch', 'onnxruntime', 'tensorrt', 'onnx') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert issubclass(TorchRunner, Runner) and issubclass(OnnxRuntimeRunner, Runner)


def test_onnxruntime_without_optimizations_runs_the_graph_as_written(onnx_path: Path) -> None:
    """``optimize=False``: no graph optimization at all (the exact reference for a Q/DQ model)."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    levels = {}
    outputs = {}
    for optimize in (True, False):
        with OnnxRuntimeRunner(onnx_path, optimize=optimize) as runner:
            levels[optimize] = runner._require_session().get_session_options().graph_optimization_level
            outputs[optimize] = runner.infer(x)
    assert levels == {
        True: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        False: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    np.testing.assert_allclose(outputs[False], outputs[True], rtol=1e-4, atol=1e-4)


def test_onnxruntime_threads_can_stop_spinning(onnx_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
    entries = {}
    for spin in (True, False):
        with OnnxRuntimeRunner(onnx_path, spin=spin) as runner:
            options = runner._require_session().get_session_options()
            try:
                entries[spin] = options.get_session_config_entry("session.intra_op.allow_spinning")
            except RuntimeError:  # never set
                entries[spin] = None
            assert runner.infer(x).shape == (1, 10)
    assert entries == {True: None, False: "0"}  # unset: ONNX Runtime's default, spinning
