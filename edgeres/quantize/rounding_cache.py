"""Learned rounding kept in the calibration cache: each finished layer's round-up bits.

A layer's entry is written (atomically) as soon as its rounding is learned, so an interrupted
run keeps every finished layer and a rerun with the same cache learns only the others. One bit
per weight (``q - floor(w / s)``), packed and base64-encoded: a ResNet-50 keeps about 4 MB.
The entries depend on the layout, its weight bits, the layers kept in float and the rounding
settings, which make up their key, besides the model and ranges the cache is tied to.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edgeres.atomic import atomic_path
from edgeres.errors import EdgeresError
from edgeres.quantize.bias_cache import correction_key, read_cache_data

__all__ = ["rounding_key", "store_rounded_layer", "stored_rounding"]

FIELD = "learned_rounding"


def rounding_key(target: str, exclude_nodes: Sequence[str], weight_bits: int, settings_key: str) -> str:
    return f"{correction_key(target, exclude_nodes, weight_bits)}|adaround:{settings_key}"


def store_rounded_layer(cache: str | os.PathLike[str], key: str, node: str, bits: np.ndarray) -> None:
    """Add one finished layer's round-up bits under ``key`` in the calibration cache, atomically."""
    path = Path(cache)
    data = read_cache_data(path)
    entries = data.get(FIELD)
    entries = dict(entries) if isinstance(entries, Mapping) else {}
    entry = entries.get(key)
    layers = dict(entry.get("layers", {})) if isinstance(entry, Mapping) else {}
    flat = np.asarray(bits, dtype=np.uint8).reshape(-1)
    layers[node] = {"weights": int(flat.size), "bits": base64.b64encode(np.packbits(flat).tobytes()).decode()}
    entries[key] = {"layers": layers}
    data[FIELD] = entries
    with atomic_path(path, suffix=".json.tmp") as tmp:
        tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def stored_rounding(cache: str | os.PathLike[str], key: str) -> dict[str, np.ndarray]:
    """The finished layers' round-up bits under ``key`` (by node; empty when there are none)."""
    path = Path(cache)
    if not path.exists():
        return {}
    entries = read_cache_data(path).get(FIELD)
    entry = entries.get(key) if isinstance(entries, Mapping) else None
    if entry is None:
        return {}
    bad = EdgeresError(
        f"calibration cache {path} has malformed learned rounding for {key}; "
        "delete it or run quantize again with --calib"
    )
    layers = entry.get("layers") if isinstance(entry, Mapping) else None
    if not isinstance(layers, Mapping):
        raise bad
    out = {}
    for node, layer in layers.items():
        if not isinstance(layer, Mapping) or not isinstance(layer.get("bits"), str):
            raise bad
        n = layer.get("weights")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise bad
        try:
            packed = np.frombuffer(base64.b64decode(layer["bits"], validate=True), dtype=np.uint8)
        except (binascii.Error, ValueError):
            raise bad from None
        if packed.size != (n + 7) // 8:
            raise bad
        out[str(node)] = np.unpackbits(packed)[:n]
    return out
