"""edgeres: from a PyTorch ResNet to a fast INT8 engine, with the numbers to prove it.

The package imports without TensorRT, a GPU or any optional extra; heavy
modules load where they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeres._lazy import lazy_exports
from edgeres.errors import EdgeresError
from edgeres.metadata import ModelMeta
from edgeres.version import __version__

# The type checker's view of _EXPORTS (tests/test_lazy_exports.py keeps the two equal).
if TYPE_CHECKING:
    from edgeres.checkpoint import save_checkpoint  # noqa: F401
    from edgeres.loading import LoadedModel, load_model  # noqa: F401

# torch is imported lazily so that `import edgeres` and `edgeres --help` stay fast.
_EXPORTS = {
    "LoadedModel": "edgeres.loading",
    "load_model": "edgeres.loading",
    "save_checkpoint": "edgeres.checkpoint",
}

__all__ = ["EdgeresError", "ModelMeta", "__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
