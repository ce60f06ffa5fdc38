"""From a PyTorch classifier to a checked, self-contained ONNX file with its metadata.

``import edgeres.export`` is light; the submodules (and torch) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeres._lazy import lazy_exports

# The type checker's view of _EXPORTS (tests/test_lazy_exports.py keeps the two equal).
if TYPE_CHECKING:
    from edgeres.export.fold import count_batchnorm, fold_batchnorm  # noqa: F401
    from edgeres.export.onnx_export import ExportResult, export_onnx  # noqa: F401
    from edgeres.export.onnx_meta import check_classifier, read_onnx_meta  # noqa: F401
    from edgeres.export.verify import InputCheck, Verification, verify_export  # noqa: F401

_EXPORTS = {
    "count_batchnorm": "edgeres.export.fold",
    "fold_batchnorm": "edgeres.export.fold",
    "ExportResult": "edgeres.export.onnx_export",
    "export_onnx": "edgeres.export.onnx_export",
    "check_classifier": "edgeres.export.onnx_meta",
    "read_onnx_meta": "edgeres.export.onnx_meta",
    "InputCheck": "edgeres.export.verify",
    "Verification": "edgeres.export.verify",
    "verify_export": "edgeres.export.verify",
}

__all__ = [*_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
