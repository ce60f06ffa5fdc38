"""The inference backends, by name: which files each runs, what it needs, how to make its runner.

Each backend is one :class:`BackendSpec`, added with :func:`register_backend`. Its factory is
named as ``"package.module:function"`` and imported only when a runner is made, so this
module imports no runner module and no heavy package: the CLI can offer the backends'
names without loading torch. :func:`backend_for_file` is the one place of the rule that
``auto`` follows: the backend that claims the file's suffix, else the fallback (torch).
The built-in backends are registered at the bottom of this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeres.errors import TENSORRT_INSTALL, MissingDependencyError, UsageError

if TYPE_CHECKING:
    from edgeres.runners.base import Runner

__all__ = [
    "AUTO",
    "ENGINE_SUFFIXES",
    "REGISTRY",
    "BackendSpec",
    "RunnerArgs",
    "auto_help",
    "available",
    "backend_choices",
    "backend_for_file",
    "backend_names",
    "check_choice",
    "get_backend",
    "module_backend",
    "owner_of",
    "register_backend",
]

#: The choice that picks the backend from the model: :func:`backend_for_file`, or torch for a module.
AUTO = "auto"


@dataclass(frozen=True)
class RunnerArgs:
    """What a backend's factory gets from :func:`~edgeres.runners.base.make_runner`.

    ``source`` is a :class:`~pathlib.Path` to an existing file, or the object given (an
    ``nn.Module``) for a backend that runs modules. ``device`` is already the backend's
    (``cuda`` for a GPU-only backend asked for ``cpu``). ``owner`` is the backend whose
    suffix the file has, None when no backend claims it or the source is a module.
    """

    source: Any
    device: str = "cpu"
    threads: int | None = None
    precision: str = "fp32"
    providers: Sequence[str] | None = None
    arch: str | None = None
    owner: str | None = None


Factory = Callable[[RunnerArgs], "Runner"]


@dataclass(frozen=True)
class BackendSpec:
    """What edgeres knows about a backend before importing it."""

    name: str
    #: File suffixes (lower case, with the dot) that ``auto`` runs on this backend.
    suffixes: tuple[str, ...]
    #: ``"package.module:function"`` (imported on first use) or the function itself.
    factory: str | Factory
    description: str
    #: The Python module the backend needs, e.g. ``"onnxruntime"``; None for none.
    requires: str | None = None
    #: The package's name for people, and how to install it, for the missing-package error.
    package: str = ""
    install: str = ""
    #: The files it runs under ``auto``, for help texts: ".onnx", "checkpoints".
    files: str = ""
    #: It runs an object (an ``nn.Module``) as well as files.
    runs_modules: bool = False
    #: It runs the files no backend claims (one backend is the fallback).
    fallback: bool = False
    #: It runs on a GPU only: the CPU default of the others means the default GPU here.
    gpu_only: bool = False

    def device_for(self, device: str) -> str:
        """The device this backend runs on when ``device`` is asked for."""
        return "cuda" if self.gpu_only and device == "cpu" else device

    def load(self) -> Factory:
        """The factory, imported now if it was given by name."""
        if not isinstance(self.factory, str):
            return self.factory
        module, _, function = self.factory.partition(":")
        made: Factory = getattr(importlib.import_module(module), function)
        return made

    def create(self, args: RunnerArgs) -> Runner:
        """A runner for ``args``; a missing package is a :class:`MissingDependencyError`."""
        if self.requires is not None and not available(self.name):
            what = f"'{args.source.name}'" if isinstance(args.source, Path) else "a model"
            raise MissingDependencyError(
                f"running {what} needs {self.package or self.requires}, which is not installed; "
                f"{self.install or f'install {self.requires}'}"
            )
        return self.load()(args)


REGISTRY: dict[str, BackendSpec] = {}


def register_backend(
    name: str,
    suffixes: Sequence[str],
    factory: str | Factory,
    *,
    description: str = "",
    requires: str | None = None,
    package: str = "",
    install: str = "",
    files: str = "",
    runs_modules: bool = False,
    fallback: bool = False,
    gpu_only: bool = False,
) -> BackendSpec:
    """Add a backend to :data:`REGISTRY`; a name, suffix or fallback given twice is refused."""
    if name in REGISTRY:
        raise ValueError(f"backend {name!r} is registered twice")
    if name == AUTO or not name.isidentifier() or name != name.lower():
        raise ValueError(f"backend name {name!r} must be a lower-case identifier other than {AUTO!r}")
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"backend {name!r}: factory {factory!r} must read 'package.module:function'")
    claimed = tuple(dict.fromkeys(suffixes))
    for suffix in claimed:
        if not suffix.startswith(".") or suffix != suffix.lower():
            raise ValueError(f"backend {name!r}: suffix {suffix!r} must be lower case and start with '.'")
        if (owner := owner_of(Path(f"x{suffix}"))) is not None:
            raise ValueError(f"backend {name!r}: suffix {suffix!r} is already run by {owner!r}")
    if fallback and (other := _fallback()) is not None:
        raise ValueError(f"backend {name!r}: {other.name!r} is already the fallback")
    spec = BackendSpec(
        name=name,
        suffixes=claimed,
        factory=factory,
        description=description or name,
        requires=requires,
        package=package,
        install=install,
        files=files or "/".join(claimed),
        runs_modules=runs_modules,
        fallback=fallback,
        gpu_only=gpu_only,
    )
    REGISTRY[name] = spec
    return spec


def backend_names() -> tuple[str, ...]:
    """The registered backends, in the order they were registered."""
    return tuple(REGISTRY)


def backend_choices() -> tuple[str, ...]:
    """What a user may ask for: ``auto`` and every backend."""
    return (AUTO, *REGISTRY)


def check_choice(name: str) -> str:
    """``name`` when it is ``auto`` or a backend, else a :class:`UsageError` listing the choices."""
    if name not in backend_choices():
        raise UsageError(f"unknown backend '{name}'; choose one of {', '.join(backend_choices())}")
    return name


def get_backend(name: str) -> BackendSpec:
    """The spec of a registered backend; an unknown name is a :class:`UsageError` listing them."""
    if name not in REGISTRY:
        raise UsageError(f"unknown backend '{name}'; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def owner_of(path: str | os.PathLike[str]) -> str | None:
    """The backend that claims the file's suffix, None when none does."""
    suffix = Path(path).suffix.lower()
    return next((s.name for s in REGISTRY.values() if suffix in s.suffixes), None)


def backend_for_file(path: str | os.PathLike[str]) -> str:
    """What ``auto`` runs the file on: the backend claiming its suffix, else the fallback."""
    owner = owner_of(path)
    if owner is not None:
        return owner
    fallback = _fallback()
    if fallback is None:
        raise UsageError(f"no backend runs '{Path(path).name}'; choose one of {', '.join(REGISTRY)}")
    return fallback.name


def module_backend(name: str = AUTO) -> BackendSpec:
    """The backend that runs a module when ``name`` is asked for (``auto``: the one that runs modules)."""
    runs = [s for s in REGISTRY.values() if s.runs_modules]
    if name == AUTO and runs:
        return runs[0]
    if name != AUTO and get_backend(name).runs_modules:
        return REGISTRY[name]
    if not runs:
        raise UsageError("no backend runs a PyTorch module; give a model file")
    raise UsageError(f"a PyTorch module runs on the {' or '.join(s.name for s in runs)} backend, not {name}")


def available(name: str) -> bool:
    """Whether the backend's package can be imported here (without importing it)."""
    spec = get_backend(name)
    if spec.requires is None:
        return True
    try:
        return importlib.util.find_spec(spec.requires) is not None
    except (ImportError, ValueError):  # a missing parent package, a broken or blocked install
        return False


def auto_help() -> str:
    """What ``auto`` picks, for a ``--backend`` help text."""
    specs = sorted(REGISTRY.values(), key=lambda s: s.fallback)
    return "auto: " + ", ".join(f"{s.name} for {s.files}" for s in specs if s.files) + "."


def _fallback() -> BackendSpec | None:
    return next((s for s in REGISTRY.values() if s.fallback), None)


# --- the built-in backends -----------------------------------------------------------------------

#: TensorRT's engine files.
ENGINE_SUFFIXES: tuple[str, ...] = (".engine", ".plan", ".trt")

register_backend(
    "torch",
    (),
    "edgeres.runners.torch_runner:create",
    description="PyTorch: an nn.Module, an edgeres checkpoint, TorchScript, .pt2, a state_dict with arch",
    requires="torch",
    package="PyTorch",
    install="`pip install torch`",
    files="checkpoints",
    runs_modules=True,
    fallback=True,
)
register_backend(
    "onnxruntime",
    (".onnx",),
    "edgeres.runners.onnxruntime_runner:create",
    description="ONNX Runtime: an ONNX classifier on the CPU, or CUDA/TensorRT execution providers",
    requires="onnxruntime",
    package="ONNX Runtime",
    install="`pip install onnxruntime` (onnxruntime-gpu for CUDA)",
)
register_backend(
    "tensorrt",
    ENGINE_SUFFIXES,
    "edgeres.runners.tensorrt_runner:create",
    description="TensorRT: an engine built by edgeres, on a CUDA GPU or a Jetson's GPU/DLA",
    requires="tensorrt",
    package="TensorRT",
    install=TENSORRT_INSTALL,
    files=".engine/.plan",
    gpu_only=True,
)
register_backend(
    "openvino",
    (".xml",),
    "edgeres.runners.openvino_runner:create",
    description="OpenVINO: an ONNX classifier (FP32, FP16, Q/DQ INT8) or an IR .xml on CPU, GPU, NPU, AUTO",
    requires="openvino",
    package="OpenVINO",
    install="`pip install edgeres[openvino]`",
    files=".xml (OpenVINO IR)",
)
