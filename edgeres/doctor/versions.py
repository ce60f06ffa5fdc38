"""The package and device rows of ``edgeres doctor``: what is installed, what is missing, what to install.

Versions come from :func:`edgeres.sysinfo.collect` (the same as ``edgeres info``); each
package is also imported, since an installed package that fails to import is broken.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any

from edgeres.doctor.checks import Check
from edgeres.errors import TENSORRT_INSTALL
from edgeres.sysinfo import SystemInfo, library_version

__all__ = ["PACKAGES", "TENSORRT_MISSING", "Package", "gpu_check", "package_checks", "tensorrt_check"]

TENSORRT_MISSING = f"TensorRT not installed: {TENSORRT_INSTALL}"


@dataclass(frozen=True)
class Package:
    """A package edgeres imports: its pip name, import name, whether edgeres needs it, how to get it."""

    name: str
    module: str
    required: bool
    install: str
    needed_for: str = ""


PACKAGES: tuple[Package, ...] = (
    Package(
        "torch",
        "torch",
        True,
        "pip install torch (the build for this machine: CPU, CUDA, or JetPack's wheel on a Jetson)",
    ),
    Package("numpy", "numpy", True, "pip install numpy"),
    Package("onnx", "onnx", True, "pip install onnx"),
    Package("onnxruntime", "onnxruntime", True, "pip install onnxruntime (onnxruntime-gpu for CUDA)"),
    Package("click", "click", True, "pip install click"),
    Package(
        "onnxconverter-common",
        "onnxconverter_common",
        False,
        "pip install onnxconverter-common",
        "FP16 engines and edgeres convert-fp16",
    ),
    Package(
        "scikit-learn", "sklearn", False, "pip install edgeres[demo]", "edgeres demo and the 'digits' data"
    ),
)


def _import(module: str) -> tuple[Any, str | None]:
    """The module, or None and the first line of why it does not import."""
    try:
        return importlib.import_module(module), None
    except Exception as exc:  # a broken install raises anything: ImportError, OSError, RuntimeError
        text = str(exc).strip().splitlines()
        return None, f"{type(exc).__name__}: {text[0][:200] if text else 'no message'}"


def _package(pkg: Package, version: str | None, info: SystemInfo) -> Check:
    if version is None:
        use = f" (for {pkg.needed_for})" if pkg.needed_for else ""
        return Check(pkg.name, "missing", f"not installed{use}: {pkg.install}", required=pkg.required)
    module, error = _import(pkg.module)
    if module is None:
        return Check(
            pkg.name, "failed", f"{version} is installed but does not import ({error}); reinstall it"
        )
    detail = version
    if pkg.name == "torch":
        cuda = getattr(getattr(module, "version", None), "cuda", None)
        detail += f", CUDA {cuda}" if cuda else ", a CPU-only build"
        if info.cuda_devices:
            detail += f", sees {', '.join(d.name for d in info.cuda_devices)}"
        elif cuda:
            detail += ", but no CUDA device is visible"
    elif pkg.name == "onnxruntime":
        detail += f", providers: {', '.join(info.onnxruntime_providers) or 'none'}"
    return Check(pkg.name, "ok", detail, required=pkg.required)


def package_checks(info: SystemInfo) -> list[Check]:
    """edgeres, Python, then one row per package of :data:`PACKAGES`."""
    from edgeres.version import __version__

    rows = [
        Check("edgeres", "ok", f"{__version__} from {_where('edgeres')}", required=True),
        Check("python", "ok", f"{info.python} ({sys.executable})", required=True),
    ]
    for pkg in PACKAGES:
        version = info.libraries.get(pkg.name) if pkg.name in info.libraries else library_version(pkg.name)
        rows.append(_package(pkg, version, info))
    return rows


def _where(module: str) -> str:
    mod = sys.modules.get(module)
    paths = list(getattr(mod, "__path__", []) or [])
    return paths[0] if paths else "an unknown place"


def tensorrt_check(info: SystemInfo, *, required: bool) -> Check:
    """TensorRT: its version, or what to install; ``required`` with ``--require-tensorrt``."""
    version = info.libraries.get("tensorrt")
    if version is None:
        detail = TENSORRT_MISSING
        if info.jetson:  # JetPack installs it for the system Python
            detail += " (a virtual environment sees JetPack's TensorRT only with --system-site-packages)"
        return Check("tensorrt", "missing", detail, required=required)
    module, error = _import("tensorrt")
    if module is None:
        return Check(
            "tensorrt", "failed", f"{version} is installed but does not import ({error}); reinstall it"
        )
    return Check("tensorrt", "ok", str(getattr(module, "__version__", version)), required=required)


def gpu_check(info: SystemInfo, *, required: bool) -> Check:
    """The CUDA devices torch sees (the TensorRT runner uses torch's CUDA), and a Jetson's L4T release."""
    jetson = f"; Jetson L4T {info.jetson['l4t']}" if info.jetson.get("l4t") else ""
    if not info.cuda_devices:
        why = "no CUDA device visible to torch"
        if info.libraries.get("torch") is not None and _torch_cuda() is None:
            why += " (a CPU-only torch build: install the CUDA build, or JetPack's torch on a Jetson)"
        return Check("gpu", "missing", why + jetson, required=required)
    names = "; ".join(
        f"cuda:{d.index} {d.name}, sm {d.compute_capability}, {d.memory_gib} GiB" for d in info.cuda_devices
    )
    return Check("gpu", "ok", f"{names}; CUDA {info.cuda_driver}{jetson}", required=required)


def _torch_cuda() -> str | None:
    module, _ = _import("torch")
    return getattr(getattr(module, "version", None), "cuda", None) if module is not None else None
