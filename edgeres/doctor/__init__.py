"""``edgeres doctor``: check that this machine runs edgeres end to end, and say what is missing.

Three kinds of checks, each a :class:`~edgeres.doctor.checks.Check` row (ok, missing,
failed or skipped):

* :mod:`~edgeres.doctor.versions`: the packages edgeres needs or can use, and the GPU;
* :mod:`~edgeres.doctor.roundtrip`: a small built-in ResNet exported to ONNX and quantized
  to INT8, run on ONNX Runtime and compared with PyTorch; where TensorRT and a GPU exist,
  its FP32, FP16 and INT8 engines built, run and compared with ONNX Runtime;
* :mod:`~edgeres.doctor.run`: all of it as one call, :func:`run_doctor`.

Importing this package loads neither torch nor onnx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeres.doctor.checks import Check, DoctorReport, format_table
    from edgeres.doctor.run import DEFAULT_MIN_AGREEMENT, DoctorSettings, run_doctor

__all__ = ["DEFAULT_MIN_AGREEMENT", "Check", "DoctorReport", "DoctorSettings", "format_table", "run_doctor"]

_HOMES = {
    "Check": "checks",
    "DoctorReport": "checks",
    "format_table": "checks",
    "DEFAULT_MIN_AGREEMENT": "run",
    "DoctorSettings": "run",
    "run_doctor": "run",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgeres.doctor' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edgeres.doctor.{home}"), name)
