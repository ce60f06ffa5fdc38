"""Inference backends behind one interface: see :class:`edgeres.runners.base.Runner`.

``import edgeres.runners`` loads neither torch nor onnxruntime (nor numpy, so the CLI can read
:mod:`edgeres.runners.registry` for its ``--backend`` choices); every name here is imported
on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeres.runners.base import BACKENDS, Runner, make_runner
    from edgeres.runners.onnxruntime_runner import OnnxRuntimeRunner
    from edgeres.runners.torch_runner import TorchRunner

__all__ = ["BACKENDS", "OnnxRuntimeRunner", "Runner", "TorchRunner", "make_runner"]

_HOMES = {
    "BACKENDS": "base",
    "Runner": "base",
    "make_runner": "base",
    "TorchRunner": "torch_runner",
    "OnnxRuntimeRunner": "onnxruntime_runner",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgeres.runners' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edgeres.runners.{home}"), name)
