"""Refuse, before any work, an output path that would overwrite one of the command's inputs.

``edgeres quantize m.onnx -o m.onnx`` would read the model and then replace it; so would
``-o ./m.onnx``, a symlink to it or a hard link of it. Paths are compared as files (device
and inode), not as strings, whenever both exist.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from edgeres.errors import UsageError

__all__ = ["refuse_overwrite_of_inputs", "same_file"]

PathLike = str | os.PathLike[str]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file: one inode, or one resolved path."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:  # one of them does not exist (yet)
        pass
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder.resolve() in path.resolve().parents
    except (OSError, RuntimeError):
        return False


def refuse_overwrite_of_inputs(
    outputs: Iterable[tuple[str, PathLike | None]],
    inputs: Iterable[tuple[str, PathLike | None]],
    *,
    input_folders: Iterable[tuple[str, PathLike | None]] = (),
) -> None:
    """Raise :class:`UsageError` when an output is one of the inputs, or two outputs are one file.

    ``outputs`` and ``inputs`` are ``(what, path)`` pairs (``what`` names it in the message,
    e.g. ``"-o"`` or ``"MODEL"``); a ``None`` path is ignored. An output inside one of
    ``input_folders`` is refused when a file is already there (it would be data of the input).
    """
    outs = [(what, Path(p)) for what, p in outputs if p is not None and str(p) != ""]
    ins = [(what, Path(p)) for what, p in inputs if p is not None and str(p) != "" and os.path.lexists(p)]
    folders = [(what, Path(p)) for what, p in input_folders if p is not None and str(p) != ""]
    for out_what, out in outs:
        for in_what, src in ins:
            if same_file(out, src):
                raise UsageError(
                    f"{out_what} '{out}' is the {in_what} '{src}': writing it would destroy the input; "
                    "choose another output path"
                )
        for in_what, folder in folders:
            if (out.exists() or out.is_symlink()) and (_inside(out, folder) or same_file(out, folder)):
                raise UsageError(
                    f"{out_what} '{out}' is a file of the {in_what} '{folder}': writing it would change the "
                    "input; choose another output path"
                )
    for i, (what_a, a) in enumerate(outs):
        for what_b, b in outs[i + 1 :]:
            if same_file(a, b):
                raise UsageError(f"{what_a} and {what_b} are the same file '{a}'; give each its own path")
