"""Inference backends behind one interface: see :class:`edgeres.runners.base.Runner`.

``import edgeres.runners`` loads neither torch nor onnxruntime; the runner classes
are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeres.runners.base import BACKENDS, Runner, make_runner

if TYPE_CHECKING:
    from edgeres.runners.onnxruntime_runner import OnnxRuntimeRunner
    from edgeres.runners.torch_runner import TorchRunner

__all__ = ["BACKENDS", "OnnxRuntimeRunner", "Runner", "TorchRunner", "make_runner"]


def __getattr__(name: str) -> Any:
    if name == "TorchRunner":
        from edgeres.runners.torch_runner import TorchRunner

        return TorchRunner
    if name == "OnnxRuntimeRunner":
        from edgeres.runners.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner
    raise AttributeError(f"module 'edgeres.runners' has no attribute {name!r}")
