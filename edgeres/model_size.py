"""How many bytes a model takes as stored: its file, plus an ONNX model's external-data files.

An ONNX model over 2 GB keeps its weights in files beside it (``external data``); the ``.onnx``
file alone is then only the graph. Sizes edgeres reports count both, so an FP32 and an INT8
model compare by what a device must hold.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["stored_bytes"]


def stored_bytes(path: str | os.PathLike[str]) -> int | None:
    """The model file's size plus its external-data files' (once each); None when there is no file."""
    path = Path(path)
    if not path.is_file():
        return None
    total = path.stat().st_size
    if path.suffix.lower() != ".onnx":
        return total
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # a damaged file: its own size is all there is to count
        return total
    folder = path.parent.resolve()
    seen: set[Path] = set()
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        if not location:
            continue
        data = (folder / location).resolve()
        if data not in seen and data.is_file() and data.is_relative_to(folder):
            seen.add(data)
            total += data.stat().st_size
    return total
