"""Default output names: one rule for every command that writes a model beside its input.

The input's name without its extension (``.onnx``, ``.pt``, ...), then the new precision tag,
then, for INT8, the Q/DQ layout, then the new extension. A trailing ``.fp32`` gives way to
the new tag, since the precision changed; any other tag stays, so what the file came from
still shows:

    r20.fp32.onnx          --convert-fp16-->   r20.fp16.onnx
    r20.fp32.onnx          --quantize------>   r20.int8.cpu.onnx, r20.int8.tensorrt.onnx
    best.pt                --quantize------>   best.fp32.onnx, best.int8.cpu.onnx
    r20.fp32.onnx          --build --fp16-->   r20.fp16.engine
    r20.int8.tensorrt.onnx --build --fp16-->   r20.int8.tensorrt.fp16.engine
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["derived_path"]

_FP32_TAG = ".fp32"


def derived_path(source: str | os.PathLike[str], tag: str | None, suffix: str) -> Path:
    """``source``'s sibling for an output of precision ``tag`` (None: unchanged) and ``suffix``."""
    source = Path(source)
    stem = source.stem if source.suffix else source.name
    if tag:
        stem = stem.removesuffix(_FP32_TAG) if stem != _FP32_TAG else stem
        stem = f"{stem}.{tag}"
    return source.with_name(stem + suffix)
