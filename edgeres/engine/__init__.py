"""From an ONNX classifier to a TensorRT engine: float16 conversion, build options, the sidecar, the build.

``import edgeres.engine`` loads neither onnx nor TensorRT; the names below load their
module on first use. Only :mod:`edgeres.engine.build` imports ``tensorrt``, inside functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeres.engine.build import BuildResult, build_engine
    from edgeres.engine.fp16 import convert_fp16, model_precision
    from edgeres.engine.options import (
        BatchProfile,
        EngineOptions,
        check_profile_fits,
        parse_batch_profile,
        parse_workspace,
    )
    from edgeres.engine.sidecar import EngineSidecar, check_compatible, read_sidecar, write_sidecar

__all__ = [
    "BatchProfile",
    "BuildResult",
    "EngineOptions",
    "EngineSidecar",
    "build_engine",
    "check_compatible",
    "check_profile_fits",
    "convert_fp16",
    "model_precision",
    "parse_batch_profile",
    "parse_workspace",
    "read_sidecar",
    "write_sidecar",
]

_HOMES = {
    "BuildResult": "build",
    "build_engine": "build",
    "convert_fp16": "fp16",
    "model_precision": "fp16",
    "BatchProfile": "options",
    "EngineOptions": "options",
    "check_profile_fits": "options",
    "parse_batch_profile": "options",
    "parse_workspace": "options",
    "EngineSidecar": "sidecar",
    "check_compatible": "sidecar",
    "read_sidecar": "sidecar",
    "write_sidecar": "sidecar",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgeres.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edgeres.engine.{home}"), name)
