"""Plain-data decisions of the TensorRT runner: the input geometry, I/O types, the CUDA graph plan.

Nothing here imports TensorRT or torch: these functions take the shapes, type names and
batch sizes that TensorRT reports, so they are tested with real values on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeres.errors import EdgeresError, UsageError

__all__ = ["CUDA_GRAPH_MAX_BATCH", "GraphPlan", "input_geometry", "numpy_dtype"]

#: Largest batch that ``cuda_graph=True`` captures (one graph per batch size seen).
CUDA_GRAPH_MAX_BATCH = 32

_NUMPY = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}


def input_geometry(
    tensor_shape: Sequence[int],
    profile_shapes: Sequence[Sequence[int]] | None,
    *,
    engine: str = "engine",
    name: str = "input",
) -> tuple[int, int, int, tuple[int, int]]:
    """(C, H, W, (min batch, max batch)) of an engine input.

    ``tensor_shape`` is ``ICudaEngine.get_tensor_shape``, -1 for every dynamic dimension
    even where the profile pins it; ``profile_shapes`` is ``get_tensor_profile_shape(name, 0)``
    (min, opt, max), needed when any dimension is -1. edgeres needs a fixed C, H and W.
    """
    shape = [int(d) for d in tensor_shape]
    if len(shape) != 4:
        raise UsageError(f"engine {engine} input {name} has shape {tuple(shape)}; edgeres needs (N, C, H, W)")
    if all(d >= 0 for d in shape):
        return shape[1], shape[2], shape[3], (shape[0], shape[0])
    shapes = [[int(d) for d in s] for s in (profile_shapes or ())]
    if len(shapes) != 3 or any(len(s) != 4 or min(s) < 1 for s in shapes):
        raise EdgeresError(
            f"engine {engine} input {name} has dynamic shape {tuple(shape)} but no usable optimization "
            f"profile ({shapes}); rebuild it with `edgeres build-engine`"
        )
    lo, _, hi = shapes
    dims = []
    for i, label in ((1, "channels"), (2, "height"), (3, "width")):
        if shape[i] >= 0:
            dims.append(shape[i])
        elif lo[i] == hi[i]:
            dims.append(lo[i])
        else:
            raise UsageError(
                f"engine {engine} input {name} takes {label} {lo[i]} to {hi[i]}; edgeres needs a fixed "
                "channels, height and width: rebuild it with one input size"
            )
    batch = (shape[0], shape[0]) if shape[0] >= 0 else (lo[0], hi[0])
    return dims[0], dims[1], dims[2], batch


def numpy_dtype(trt_dtype: Any, *, engine: str = "engine", tensor: str = "tensor") -> np.dtype[Any]:
    """The numpy type of a TensorRT ``DataType`` (or its name, "FLOAT", "DataType.HALF").

    BF16, FP8, FP4 and INT4 have no numpy type (``trt.nptype`` raises TypeError on them):
    one line saying to rebuild with float32 or float16 I/O.
    """
    name = str(getattr(trt_dtype, "name", trt_dtype)).split(".")[-1].upper()
    if name not in _NUMPY:
        raise UsageError(
            f"engine {engine} {tensor} is {name}, which numpy has no type for; build the engine from an "
            "ONNX whose input and output are float32 or float16"
        )
    return np.dtype(_NUMPY[name])


class GraphPlan:
    """What the runner does for each batch: set the shape, run plainly, capture, or replay a CUDA graph.

    TensorRT finishes shape-dependent setup in the first uncaptured enqueue after
    ``set_input_shape``. So after every shape change the batch runs uncaptured (that run is
    the result); a graph is captured on the next batch of that size and replayed after it,
    never straight after a shape change. A capture that failed (``captured(n, False)``)
    leaves that size uncaptured.
    """

    def __init__(self, enabled: bool, max_batch: int = CUDA_GRAPH_MAX_BATCH) -> None:
        self.enabled = enabled
        self.max_batch = max_batch
        self.shape: int | None = None
        self._captured: dict[int, bool] = {}

    def plan(self, batch: int) -> tuple[str, ...]:
        """Actions in order, from ``set_shape``, ``enqueue`` (uncaptured), ``capture``, ``replay``."""
        if batch != self.shape:
            self.shape = batch
            return ("set_shape", "enqueue")
        if not self.enabled or batch > self.max_batch or self._captured.get(batch) is False:
            return ("enqueue",)
        if batch in self._captured:
            return ("replay",)
        return ("capture", "replay")

    def captured(self, batch: int, ok: bool) -> None:
        """Record the capture of ``batch``; a failed one means plain runs for that size from now on."""
        self._captured[batch] = ok

    def forget_shape(self) -> None:
        """The context's shape is unknown (a failed set_input_shape): the next batch sets it again."""
        self.shape = None
