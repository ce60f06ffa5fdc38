"""The backend registry: names, the suffix rule of ``auto``, and a backend added from outside."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeres.errors import MissingDependencyError, UsageError
from edgeres.runners import base, registry
from edgeres.runners.base import Runner, Shape, make_runner
from edgeres.runners.registry import (
    ENGINE_SUFFIXES,
    REGISTRY,
    RunnerArgs,
    auto_help,
    available,
    backend_choices,
    backend_for_file,
    backend_names,
    get_backend,
    owner_of,
    register_backend,
)
from tests.test_imports import _run as run_python

RUNNERS = Path(registry.__file__).resolve().parent


class FakeRunner(Runner):
    """A runner that remembers what its factory was given and returns zeros."""

    name = "fake"

    def __init__(self, args: RunnerArgs) -> None:
        super().__init__()
        self.args = args

    def _activate(self) -> None: ...

    def _deactivate(self) -> None: ...

    @property
    def input_name(self) -> str:
        return "input"

    @property
    def input_shape(self) -> Shape:
        return (None, 3, None, None)

    @property
    def device(self) -> str:
        return self.args.device

    @property
    def precision(self) -> str:
        return self.args.precision

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return np.zeros((batch.shape[0], 2), np.float32)


def create_fake(args: RunnerArgs) -> FakeRunner:
    return FakeRunner(args)


@pytest.fixture
def fake() -> Iterator[str]:
    """A backend "fake" for ``.fake`` files, registered by name as a built-in is, then removed."""
    register_backend("fake", (".fake",), f"{__name__}:create_fake", description="a test backend")
    try:
        yield "fake"
    finally:
        REGISTRY.pop("fake")


@pytest.fixture
def model_file(tmp_path: Path) -> Any:
    def make(name: str) -> Path:
        path = tmp_path / name
        path.write_bytes(b"not a model")
        return path

    return make


def test_built_in_backends() -> None:
    assert backend_names() == ("torch", "onnxruntime", "tensorrt", "openvino")
    assert backend_choices() == base.BACKENDS == ("auto", "torch", "onnxruntime", "tensorrt", "openvino")
    assert get_backend("tensorrt").suffixes == ENGINE_SUFFIXES == base.ENGINE_SUFFIXES
    assert ENGINE_SUFFIXES == (".engine", ".plan", ".trt")
    assert [get_backend(n).requires for n in backend_names()] == [
        "torch",
        "onnxruntime",
        "tensorrt",
        "openvino",
    ]
    assert auto_help() == (
        "auto: onnxruntime for .onnx, tensorrt for .engine/.plan, openvino for .xml (OpenVINO IR), "
        "torch for checkpoints."
    )


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        ("m.onnx", "onnxruntime"),
        ("M.ONNX", "onnxruntime"),
        ("m.engine", "tensorrt"),
        ("m.plan", "tensorrt"),
        ("m.trt", "tensorrt"),
        ("m.xml", "openvino"),
        ("M.XML", "openvino"),
        ("m.Plan", "tensorrt"),
        ("m.pt", "torch"),
        ("m.pt2", "torch"),
        ("m.pth", "torch"),
        ("m.ts", "torch"),
        ("model", "torch"),
        ("m.onnx.json", "torch"),
    ],
)
def test_suffix_rule(name: str, backend: str) -> None:
    assert backend_for_file(name) == backend
    assert backend_for_file(Path("some/folder") / name) == backend
    assert owner_of(name) == (None if backend == "torch" else backend)


def test_duplicate_registration_is_refused() -> None:
    before = dict(REGISTRY)
    with pytest.raises(ValueError, match="'torch' is registered twice"):
        register_backend("torch", (".pt",), f"{__name__}:create_fake")
    with pytest.raises(ValueError, match=r"suffix '\.onnx' is already run by 'onnxruntime'"):
        register_backend("other", (".onnx",), f"{__name__}:create_fake")
    with pytest.raises(ValueError, match="'torch' is already the fallback"):
        register_backend("other", (), f"{__name__}:create_fake", fallback=True)
    for bad in ("auto", "Fake", "no-dash"):
        with pytest.raises(ValueError, match="lower-case identifier"):
            register_backend(bad, (), f"{__name__}:create_fake")
    with pytest.raises(ValueError, match="must be lower case and start with"):
        register_backend("other", ("fake",), f"{__name__}:create_fake")
    with pytest.raises(ValueError, match=r"package\.module:function"):
        register_backend("other", (), "tests.runners.test_registry.create_fake")
    assert before == REGISTRY


def test_unknown_backend_lists_the_names(model_file: Any) -> None:
    with pytest.raises(UsageError) as info:
        get_backend("tflite")
    assert str(info.value) == "unknown backend 'tflite'; choose one of torch, onnxruntime, tensorrt, openvino"
    assert info.value.exit_code == 2
    with pytest.raises(UsageError) as info:
        make_runner(model_file("m.onnx"), "tflite")
    assert (
        str(info.value)
        == "unknown backend 'tflite'; choose one of auto, torch, onnxruntime, tensorrt, openvino"
    )
    with pytest.raises(UsageError, match="unknown backend 'auto'"):
        get_backend("auto")  # a choice, not a backend


def test_registered_backend_is_offered(fake: str, model_file: Any) -> None:
    assert backend_names()[-1] == fake and base.BACKENDS[-1] == fake
    assert backend_for_file("x.FAKE") == fake and available(fake)
    runner = make_runner(model_file("m.fake"), threads=3, providers=["cpu"])
    assert isinstance(runner, FakeRunner) and not runner.is_active
    assert runner.args == RunnerArgs(model_file("m.fake"), threads=3, providers=["cpu"], owner=fake)
    with runner:
        assert runner.infer(np.zeros((2, 3, 4, 4), np.float32)).shape == (2, 2)
    # asked for by name, it gets any file, told which backend claims it
    forced = make_runner(model_file("m.onnx"), fake, arch="resnet20")
    assert isinstance(forced, FakeRunner)
    assert (forced.args.owner, forced.args.arch) == ("onnxruntime", "resnet20")
    assert "fake for .fake" in auto_help()
    with pytest.raises(UsageError, match="a PyTorch module runs on the torch backend, not fake"):
        make_runner(object(), fake)  # type: ignore[arg-type]


def test_removed_backend_is_gone(fake: str) -> None:
    REGISTRY.pop(fake)
    try:
        assert fake not in backend_names() and backend_for_file("m.fake") == "torch"
        with pytest.raises(UsageError, match="unknown backend 'fake'"):
            make_runner(__file__, fake)
    finally:
        register_backend("fake", (".fake",), create_fake)  # the fixture removes it again


def test_missing_package_is_clear(model_file: Any) -> None:
    register_backend(
        "absent",
        (".absent",),
        f"{__name__}:create_fake",
        requires="edgeres_no_such_package.sub",
        package="Absent",
        install="`pip install absent`",
    )
    try:
        assert not available("absent")
        with pytest.raises(MissingDependencyError) as info:
            make_runner(model_file("m.absent"))
        expected = "running 'm.absent' needs Absent, which is not installed; `pip install absent`"
        assert str(info.value) == expected
    finally:
        REGISTRY.pop("absent")


def test_gpu_only_backend_runs_on_the_gpu() -> None:
    assert get_backend("tensorrt").device_for("cpu") == "cuda"
    assert get_backend("tensorrt").device_for("cuda:1") == "cuda:1"
    assert get_backend("onnxruntime").device_for("cpu") == "cpu"


def test_registry_imports_no_runner_module() -> None:
    done = run_python(
        """
        import sys, edgeres.runners.registry
        heavy = ("numpy", "torch", "onnxruntime", "tensorrt")
        print(sorted(m for m in sys.modules if m.startswith("edgeres.runners.") or m in heavy))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['edgeres.runners.registry']"


@pytest.mark.parametrize("module", ["base.py", "registry.py"])
def test_no_static_import_of_a_runner_module(module: str) -> None:
    """base.py and the registry name no runner module in an import, not even inside a function."""
    tree = ast.parse((RUNNERS / module).read_text(encoding="utf-8"))
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported += [f"{node.module}.{a.name}" for a in node.names]
    runners = [n for n in imported if n.split(".")[-1].endswith("_runner") or "_runner." in n]
    assert runners == []
