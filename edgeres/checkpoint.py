"""The edgeres checkpoint: weights plus the metadata every later stage reads.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(weights_only=True)``: tensors, strings, numbers and lists only, so
loading one never runs code from the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeres.atomic import atomic_path
from edgeres.errors import EdgeresError
from edgeres.metadata import ModelMeta

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT = "edgeres.checkpoint"
FORMAT_VERSION = 1


def is_checkpoint(obj: object) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def save_checkpoint(
    model: nn.Module | Mapping[str, torch.Tensor],
    meta: ModelMeta,
    path: str | os.PathLike[str],
    *,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save weights and metadata to ``path`` atomically and return the path.

    ``extra`` holds more plain data (optimizer state, training progress) that
    loaders which do not know it simply ignore.
    """
    import torch

    from edgeres.version import __version__

    state = model.state_dict() if isinstance(model, torch.nn.Module) else dict(model)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgeres_version": __version__,
        "meta": meta.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }
    if extra:
        payload["extra"] = dict(extra)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(payload: Mapping[str, Any], path: Path) -> tuple[ModelMeta, dict[str, torch.Tensor]]:
    """Split a loaded checkpoint dict into metadata and state_dict, checking its version."""
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EdgeresError(
            f"{path} is an edgeres checkpoint of format version {version}, newer than this edgeres "
            f"understands ({FORMAT_VERSION}); upgrade edgeres"
        )
    state = payload.get("state_dict")
    if not isinstance(state, Mapping):
        raise EdgeresError(f"{path} is an edgeres checkpoint without weights; re-save it with edgeres")
    try:
        meta = ModelMeta.from_dict(payload.get("meta") or {})
    except EdgeresError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    return meta, dict(state)


def create_checkpoint(
    arch: str,
    path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    class_names: tuple[str, ...] = (),
    seed: int = 0,
    arch_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint of ``arch`` with freshly initialised weights and its default metadata.

    Useful for latency measurements, which do not depend on the weights, and
    as the starting point of training.
    """
    import torch

    from edgeres.metadata import Provenance
    from edgeres.models import get_model, get_spec

    spec = get_spec(arch)
    n = num_classes or (len(class_names) if class_names else spec.default_num_classes)
    options = dict(arch_options or {})
    torch.manual_seed(seed)
    model = get_model(arch, num_classes=n, **options)
    meta = ModelMeta(
        arch=arch,
        num_classes=n,
        class_names=tuple(class_names),
        arch_options=options,
        preprocessing=spec.preprocessing,
        provenance=Provenance(source=f"random initialisation, seed {seed}", epochs=0),
    )
    return save_checkpoint(model, meta, path)
