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

from typing import TYPE_CHECKING

from edgeres._lazy import lazy_exports

# The type checker's view of _EXPORTS (tests/test_lazy_exports.py keeps the two equal).
if TYPE_CHECKING:
    from edgeres.doctor.checks import Check, DoctorReport, format_table  # noqa: F401
    from edgeres.doctor.run import DEFAULT_MIN_AGREEMENT, DoctorSettings, run_doctor  # noqa: F401

_EXPORTS = {
    "Check": "edgeres.doctor.checks",
    "DoctorReport": "edgeres.doctor.checks",
    "format_table": "edgeres.doctor.checks",
    "DEFAULT_MIN_AGREEMENT": "edgeres.doctor.run",
    "DoctorSettings": "edgeres.doctor.run",
    "run_doctor": "edgeres.doctor.run",
}

__all__ = [*_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
