"""From an ONNX classifier to a TensorRT engine: float16 conversion, build options, the sidecar, the build.

``import edgeres.engine`` loads neither onnx nor TensorRT; the names below load their
module on first use. Only :mod:`edgeres.engine.build` imports ``tensorrt``, inside functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeres._lazy import lazy_exports

# The type checker's view of _EXPORTS (tests/test_lazy_exports.py keeps the two equal).
if TYPE_CHECKING:
    from edgeres.engine.build import BuildResult, build_engine  # noqa: F401
    from edgeres.engine.fp16 import convert_fp16, model_precision  # noqa: F401
    from edgeres.engine.options import (  # noqa: F401
        BatchProfile,
        EngineOptions,
        check_profile_fits,
        parse_batch_profile,
        parse_workspace,
    )
    from edgeres.engine.sidecar import EngineSidecar, check_compatible, read_sidecar, write_sidecar  # noqa: F401

_EXPORTS = {
    "BuildResult": "edgeres.engine.build",
    "build_engine": "edgeres.engine.build",
    "convert_fp16": "edgeres.engine.fp16",
    "model_precision": "edgeres.engine.fp16",
    "BatchProfile": "edgeres.engine.options",
    "EngineOptions": "edgeres.engine.options",
    "check_profile_fits": "edgeres.engine.options",
    "parse_batch_profile": "edgeres.engine.options",
    "parse_workspace": "edgeres.engine.options",
    "EngineSidecar": "edgeres.engine.sidecar",
    "check_compatible": "edgeres.engine.sidecar",
    "read_sidecar": "edgeres.engine.sidecar",
    "write_sidecar": "edgeres.engine.sidecar",
}

__all__ = [*_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
