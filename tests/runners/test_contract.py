"""The contract every registered backend keeps, checked on a small real model.

Each backend joins by an entry in :data:`CONTRACTS` (how to make its runner of the reference
resnet20, what precision and device to expect); the tests run once per name in
:func:`backend_names`. A backend registered without an entry fails here, so a new backend
cannot skip the contract; one that cannot run on this machine is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeres.errors import EdgeresError, UsageError
from edgeres.runners.base import Runner, make_runner
from edgeres.runners.registry import available, backend_names

NUM_CLASSES = 10


class Reference:
    """resnet20 with random weights and BatchNorm statistics, and the files each backend runs."""

    def __init__(self, folder: Path) -> None:
        import torch

        from edgeres.export.fold import randomize_batchnorm
        from edgeres.models import get_model

        torch.manual_seed(0)
        self.model = get_model("resnet20", num_classes=NUM_CLASSES)
        randomize_batchnorm(self.model)
        self.model.eval()
        self.folder = folder

    @property
    def meta(self) -> Any:
        from edgeres.metadata import CIFAR10_MEAN, CIFAR10_STD, ModelMeta, Preprocessing

        pre = Preprocessing(input_size=(32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)
        return ModelMeta(arch="resnet20", num_classes=NUM_CLASSES, preprocessing=pre)

    @cached_property
    def checkpoint(self) -> Path:
        from edgeres.checkpoint import save_checkpoint

        return save_checkpoint(self.model, self.meta, self.folder / "r20.pt")

    @cached_property
    def onnx(self) -> Path:
        from edgeres.export.onnx_export import export_onnx

        out = self.folder / "r20.onnx"
        return export_onnx(self.model, self.meta, out, exporter="torchscript", verify=False).path

    @cached_property
    def engine(self) -> Path:
        from edgeres.engine.build import build_engine
        from edgeres.engine.options import BatchProfile, EngineOptions

        return build_engine(self.onnx, EngineOptions(batch=BatchProfile(1, 4, 8)), progress=False).engine_path

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """PyTorch's own output for ``batch``: what every backend must agree with."""
        import torch

        with torch.inference_mode():
            out: np.ndarray = self.model(torch.from_numpy(batch)).numpy()
        return out


def _runs_anywhere() -> str | None:
    return None


def _needs_openvino() -> str | None:
    return None if available("openvino") else "OpenVINO not installed"


def _needs_tensorrt() -> str | None:
    if not available("tensorrt"):
        return "TensorRT not installed"
    import torch

    return None if torch.cuda.is_available() else "no CUDA GPU"


@dataclass(frozen=True)
class Contract:
    """How a backend joins: its (inactive) runner of the reference model, and what it reports."""

    make: Callable[[Reference], Runner]
    skip: Callable[[], str | None] = _runs_anywhere
    precision: str = "fp32"
    device: str = "cpu"
    #: Tolerance of the logits against PyTorch's, relative to their largest magnitude.
    rtol: float = 1e-4


Backend = tuple[str, Contract, Runner]

#: One entry per registered backend, keyed by its name.
CONTRACTS: dict[str, Contract] = {
    "torch": Contract(lambda ref: make_runner(ref.checkpoint, "torch", threads=1)),
    "onnxruntime": Contract(lambda ref: make_runner(ref.onnx, "onnxruntime", threads=1)),
    "tensorrt": Contract(
        lambda ref: make_runner(ref.engine, "tensorrt"), skip=_needs_tensorrt, device="cuda", rtol=1e-2
    ),
    "openvino": Contract(lambda ref: make_runner(ref.onnx, "openvino", threads=1), skip=_needs_openvino),
}


def test_every_registered_backend_has_a_contract() -> None:
    assert sorted(CONTRACTS) == sorted(backend_names())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return Reference(tmp_path_factory.mktemp("contract"))


@pytest.fixture(params=backend_names())
def backend(request: pytest.FixtureRequest, reference: Reference) -> Backend:
    name: str = request.param
    contract = CONTRACTS.get(name)
    if contract is None:
        pytest.fail(f"backend {name!r} is registered but has no entry in CONTRACTS ({__file__})")
    reason = contract.skip()
    if reason is not None:
        pytest.skip(reason)
    return name, contract, contract.make(reference)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32), dtype=np.float32)


def test_infer_needs_activation(backend: Backend) -> None:
    name, _, runner = backend
    assert runner.name == name and not runner.is_active
    with pytest.raises(EdgeresError, match="not active"):
        runner.infer(_images(1))
    with runner as active:
        assert active is runner and runner.is_active
    assert not runner.is_active
    with pytest.raises(EdgeresError, match="not active"):
        runner.infer(_images(1))


def test_description_is_filled(backend: Backend) -> None:
    name, contract, runner = backend
    with runner:
        assert isinstance(runner.input_name, str) and runner.input_name
        shape = runner.input_shape
        assert len(shape) == 4 and shape[1] == 3
        assert all(d is None or (isinstance(d, int) and d > 0) for d in shape)
        assert runner.precision == contract.precision
        assert runner.device.split(":")[0] == contract.device
        text = runner.describe()
        assert name in text and runner.device in text and runner.precision in text


@pytest.mark.parametrize("n", [1, 3])
def test_logits_agree_with_pytorch(backend: Backend, reference: Reference, n: int) -> None:
    _, contract, runner = backend
    x = _images(n, seed=n)
    expected = reference.logits(x)
    with runner:
        got = runner.infer(x)
    assert got.dtype == np.float32 and got.shape == (n, NUM_CLASSES)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=contract.rtol * scale)


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        (np.zeros((3, 32, 32), np.float32), "4-D NCHW"),
        (np.zeros((1, 1, 3, 32, 32), np.float32), "4-D NCHW"),
        ([[[[0.0]]]], "4-D NCHW"),
        (np.zeros((1, 4, 32, 32), np.float32), "does not fit"),
        (np.zeros((1, 3, 32, 32), np.int64), "floats"),
    ],
    ids=["rank-3", "rank-5", "list", "4-channels", "int64"],
)
def test_bad_batch_is_a_usage_error(backend: Backend, batch: Any, match: str) -> None:
    _, _, runner = backend
    with runner, pytest.raises(UsageError, match=match):
        runner.infer(batch)


def test_a_batch_of_the_shape_just_accepted_is_still_checked(backend: Backend) -> None:
    """The runner skips its checks for a batch like the last one it accepted (float32,
    contiguous, same shape): another dtype, layout or kind of array of that shape must not ride
    on that shortcut."""
    _, contract, runner = backend
    x = _images(2, seed=5)
    with runner:
        expected = runner.infer(x)
        scale = max(1.0, float(np.abs(expected).max()))
        tol = contract.rtol * scale
        np.testing.assert_allclose(runner.infer(x.astype(np.float64)), expected, rtol=0, atol=tol)
        strided = np.empty((2, 3, 32, 64), np.float32)[..., ::2]
        strided[...] = x
        assert strided.shape == x.shape and not strided.flags.c_contiguous
        np.testing.assert_allclose(runner.infer(strided), expected, rtol=0, atol=tol)
        with pytest.raises(UsageError, match="floats"):
            runner.infer(x.astype(np.int64))
        runner.deactivate()
        runner.activate()
        with pytest.raises(UsageError, match="does not fit"):
            runner.infer(np.zeros((2, 4, 32, 32), np.float32))
        np.testing.assert_allclose(runner.infer(x), expected, rtol=0, atol=tol)


def test_deactivate_is_safe_twice(backend: Backend) -> None:
    _, _, runner = backend
    runner.deactivate()  # never activated
    runner.activate()
    assert runner.activate() is runner  # idempotent
    runner.deactivate()
    runner.deactivate()
    assert not runner.is_active
    with runner:  # and it comes back
        assert runner.infer(_images(2)).shape == (2, NUM_CLASSES)


def test_tensorrt_is_skipped_for_the_right_reason() -> None:
    if importlib.util.find_spec("tensorrt") is None:
        assert CONTRACTS["tensorrt"].skip() == "TensorRT not installed"


def test_openvino_is_skipped_for_the_right_reason() -> None:
    if importlib.util.find_spec("openvino") is None:
        assert CONTRACTS["openvino"].skip() == "OpenVINO not installed"
    else:
        assert CONTRACTS["openvino"].skip() is None
