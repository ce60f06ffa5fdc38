"""``--exclude``: layers kept in float by name or pattern, as ONNX Runtime's ``nodes_to_exclude``."""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Sequence

from edgeres.errors import UsageError

__all__ = ["resolve_excludes"]


def resolve_excludes(fp32_onnx: str | os.PathLike[str], patterns: Sequence[str]) -> tuple[str, ...]:
    """The node names of ``fp32_onnx`` that ``patterns`` name (exactly, or as ``fnmatch`` globs).

    A pattern that names no node is refused with the closest names, so a typo never quietly
    quantizes the layer it meant to keep in float.
    """
    if not patterns:
        return ()
    import onnx

    names = [n.name for n in onnx.load(str(fp32_onnx), load_external_data=False).graph.node if n.name]
    chosen: dict[str, None] = {}
    for pattern in patterns:
        matched = [n for n in names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.4)
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise UsageError(
                f"--exclude '{pattern}' names no node of {os.fspath(fp32_onnx)}{hint} "
                "(edgeres inspect lists them)"
            )
        chosen.update(dict.fromkeys(matched))
    return tuple(chosen)
