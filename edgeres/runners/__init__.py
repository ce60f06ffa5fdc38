"""Inference backends behind one interface: see :class:`edgeres.runners.base.Runner`.

``import edgeres.runners`` loads neither torch nor onnxruntime (nor numpy, so the CLI can read
:mod:`edgeres.runners.registry` for its ``--backend`` choices); every name here is imported
on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeres._lazy import lazy_exports

# The type checker's view of _EXPORTS (tests/test_lazy_exports.py keeps the two equal).
if TYPE_CHECKING:
    from edgeres.runners.base import BACKENDS, Runner, make_runner  # noqa: F401
    from edgeres.runners.onnxruntime_runner import OnnxRuntimeRunner  # noqa: F401
    from edgeres.runners.torch_runner import TorchRunner  # noqa: F401

_EXPORTS = {
    "BACKENDS": "edgeres.runners.base",
    "Runner": "edgeres.runners.base",
    "make_runner": "edgeres.runners.base",
    "TorchRunner": "edgeres.runners.torch_runner",
    "OnnxRuntimeRunner": "edgeres.runners.onnxruntime_runner",
}

__all__ = [*_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
