"""From a PyTorch classifier to a checked, self-contained ONNX file with its metadata.

``import edgeres.export`` is light; the submodules (and torch) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeres.export.fold import count_batchnorm, fold_batchnorm
    from edgeres.export.onnx_export import ExportResult, export_onnx
    from edgeres.export.onnx_meta import check_classifier, read_onnx_meta
    from edgeres.export.verify import InputCheck, Verification, verify_export

__all__ = [
    "ExportResult",
    "InputCheck",
    "Verification",
    "check_classifier",
    "count_batchnorm",
    "export_onnx",
    "fold_batchnorm",
    "read_onnx_meta",
    "verify_export",
]

_HOMES = {
    "count_batchnorm": "fold",
    "fold_batchnorm": "fold",
    "ExportResult": "onnx_export",
    "export_onnx": "onnx_export",
    "check_classifier": "onnx_meta",
    "read_onnx_meta": "onnx_meta",
    "InputCheck": "verify",
    "Verification": "verify",
    "verify_export": "verify",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgeres.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edgeres.export.{home}"), name)
