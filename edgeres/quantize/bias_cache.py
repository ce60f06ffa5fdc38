"""Bias corrections kept in the calibration cache, so ``--calib-cache`` reuses them as it reuses ranges.

The cache file is tied to one model (its SHA-256) and one set of ranges; a correction also
depends on the layout and on the layers kept in float, which make up its key. The shifts are
written with ``repr`` floats (JSON), so they load back bit for bit.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.atomic import atomic_path
from edgeres.errors import EdgeresError

__all__ = ["correction_key", "read_cache_data", "store_shifts", "stored_shifts"]

_FIELD = "bias_corrections"


def correction_key(target: str, exclude_nodes: Sequence[str], weight_bits: int = 8) -> str:
    """The layout, its weight bits and the layers kept in float: what a correction depends on besides
    model and ranges (8-bit weights add nothing to the key, which keeps older caches valid)."""
    key = target if weight_bits == 8 else f"{target}|w{weight_bits}"
    return key if not exclude_nodes else f"{key}|float:{','.join(sorted(set(exclude_nodes)))}"


def store_shifts(
    cache: str | os.PathLike[str], key: str, shifts: Mapping[str, np.ndarray], num_images: int
) -> None:
    """Add (or replace) the corrections under ``key`` in the calibration cache at ``cache``, atomically."""
    path = Path(cache)
    data = read_cache_data(path)
    entries = data.get(_FIELD)
    entries = dict(entries) if isinstance(entries, Mapping) else {}
    entries[key] = {
        "images": int(num_images),
        "shifts": {node: [float(v) for v in np.asarray(s).reshape(-1)] for node, s in shifts.items()},
    }
    data[_FIELD] = entries
    with atomic_path(path, suffix=".json.tmp") as tmp:
        tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def stored_shifts(cache: str | os.PathLike[str], key: str) -> tuple[dict[str, np.ndarray], int] | None:
    """The corrections under ``key`` (shifts by node, images measured on), or None when there are none."""
    path = Path(cache)
    entries = read_cache_data(path).get(_FIELD)
    entry = entries.get(key) if isinstance(entries, Mapping) else None
    if entry is None:
        return None
    bad = EdgeresError(
        f"calibration cache {path} has malformed bias corrections for {key}; "
        "delete it or run quantize again with --calib"
    )
    if not isinstance(entry, Mapping) or not isinstance(entry.get("shifts"), Mapping):
        raise bad
    images = entry.get("images")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise bad
    shifts = {}
    for node, values in entry["shifts"].items():
        if not isinstance(values, list) or not values or not all(_finite(v) for v in values):
            raise bad
        shifts[str(node)] = np.asarray(values, dtype=np.float64)
    return shifts, images


def _finite(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def read_cache_data(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeresError(f"cannot read calibration cache {path} ({exc})") from exc
    if not isinstance(data, dict):
        raise EdgeresError(f"calibration cache {path} is malformed (not an object)")
    return data
