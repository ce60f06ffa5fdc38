"""edgeres: from a PyTorch ResNet to a fast INT8 engine, with the numbers to prove it.

The package imports without TensorRT, a GPU or any optional extra; heavy
modules load where they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["EdgeresError", "LoadedModel", "ModelMeta", "__version__", "load_model", "save_checkpoint"]

from edgeres.errors import EdgeresError
from edgeres.metadata import ModelMeta

if TYPE_CHECKING:
    from edgeres.checkpoint import save_checkpoint
    from edgeres.loading import LoadedModel, load_model


def __getattr__(name: str) -> Any:
    # torch is imported lazily so that `import edgeres` and `edgeres --help` stay fast.
    if name in ("load_model", "LoadedModel"):
        from edgeres import loading

        return getattr(loading, name)
    if name == "save_checkpoint":
        from edgeres.checkpoint import save_checkpoint

        return save_checkpoint
    raise AttributeError(f"module 'edgeres' has no attribute {name!r}")
