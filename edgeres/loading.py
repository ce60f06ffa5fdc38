"""Load a user's model, whatever form it comes in, with its metadata.

Accepted: an edgeres checkpoint, a TorchScript archive, a torch.export ``.pt2``
program, a bare state_dict plus an architecture name, and an ONNX file (handed
through to the ONNX stages). A whole pickled ``nn.Module`` can only be read by
running code from the file, so it is refused unless the caller opts in;
TorchScript and ``.pt2`` programs are first checked by :mod:`edgeres.model_safety`.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgeres.checkpoint import is_checkpoint, read_checkpoint
from edgeres.errors import EdgeresError, UsageError, first_line
from edgeres.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta, Preprocessing, Provenance

if TYPE_CHECKING:
    import torch
    from torch import nn

SourceFormat = Literal["checkpoint", "torchscript", "exported_program", "state_dict", "pickle", "onnx"]

_TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".ckpt", ".bin", ".tar")
_STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights")


@dataclass(frozen=True)
class MetaOverrides:
    """Metadata given on the command line; it wins over what a file stores.

    Models from outside (TorchScript, ONNX, state_dict) carry no metadata, so
    these are their only source, with ImageNet's mean/std and the
    architecture's input size (else 224) as defaults.
    """

    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def apply(self, meta: ModelMeta) -> ModelMeta:
        pre = meta.preprocessing
        pre = Preprocessing(
            input_size=self.input_size or pre.input_size,
            mean=self.mean or pre.mean,
            std=self.std or pre.std,
            resize=pre.resize,
        )
        names = self.class_names if self.class_names is not None else meta.class_names
        num_classes = self.num_classes or (len(names) if names else meta.num_classes)
        if names and len(names) != num_classes:
            names = () if self.class_names is None else names
        return meta.replace(num_classes=num_classes, class_names=tuple(names), preprocessing=pre)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for the next stage: a torch module, or an ONNX file, plus its metadata."""

    path: Path | None
    format: SourceFormat
    meta: ModelMeta
    module: nn.Module | None = None
    #: A checkpoint's extra data (e.g. ``{"train": {"split": ...}}`` from edgeres train).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_onnx(self) -> bool:
        return self.format == "onnx"

    def require_module(self) -> nn.Module:
        if self.module is None:
            raise UsageError(f"{self.path} is an ONNX model; this step needs a PyTorch model (.pt)")
        return self.module


def load_model(
    path: str | os.PathLike[str],
    arch: str | None = None,
    *,
    overrides: MetaOverrides | None = None,
    unsafe_pickle: bool = False,
    arch_options: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load ``path`` in any supported format; see the module docstring.

    ``arch`` names the architecture for a bare state_dict (and checks a
    checkpoint's); ``overrides`` supplies metadata the file lacks. Raises
    :class:`EdgeresError` with a one-line message for every kind of bad input.
    """
    path = Path(path)
    overrides = overrides or MetaOverrides()
    if not path.exists():
        raise UsageError(f"model file '{path}' does not exist")
    if path.is_dir():
        raise UsageError(f"'{path}' is a folder; give the model file (.pt, .pt2, .onnx)")
    if path.stat().st_size == 0:
        raise EdgeresError(
            f"model file '{path}' is empty (0 bytes): damaged or not fully written; re-save or re-download it"
        )
    kind = _sniff(path)
    if kind == "onnx":
        from edgeres.export.onnx_meta import read_onnx_meta

        o = overrides
        meta = read_onnx_meta(
            path, input_size=o.input_size, mean=o.mean, std=o.std, class_names=o.class_names
        )
        return LoadedModel(path, "onnx", meta)
    if kind == "torchscript":
        return _load_torchscript(path, arch, overrides, unsafe_pickle)
    if kind == "exported_program":
        return _load_exported(path, arch, overrides, unsafe_pickle)
    return _load_pickled(path, arch, overrides, unsafe_pickle, arch_options or {})


def _sniff(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            raise EdgeresError(
                f"'{path}' is a truncated or corrupt PyTorch file; re-save or re-download it"
            ) from None
        if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/archive_format") or n.endswith("/models/model.json") for n in names):
            return "exported_program"
        if any(n.endswith("data.pkl") for n in names):
            return "torch_pickle"
        raise EdgeresError(f"'{path}' is a zip archive but not a PyTorch file edgeres knows")
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if head[:1] == b"\x80":  # pickle protocol marker: legacy (non-zip) torch.save
        return "torch_pickle"
    if path.suffix.lower() in _TORCH_SUFFIXES:  # named as a PyTorch file, but its bytes are not one
        raise EdgeresError(f"'{path}' is damaged: it is not a PyTorch file; re-save or re-download it")
    raise EdgeresError(
        f"'{path}' is not a format edgeres reads; give an edgeres checkpoint, a state_dict, "
        "TorchScript, a torch.export .pt2 program, or an ONNX file"
    )


def _default_meta(arch: str | None, num_classes: int | None, source: str) -> ModelMeta:
    """Metadata for a model from outside: the architecture's defaults, else ImageNet's."""
    if arch is not None:
        from edgeres.models import get_spec

        spec = get_spec(arch)
        pre = Preprocessing(input_size=spec.preprocessing.input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        n = num_classes or spec.default_num_classes
    else:
        pre, n = Preprocessing(), num_classes or 1000
    return ModelMeta(arch=arch, num_classes=n, preprocessing=pre, provenance=Provenance(source=source))


def _torch_load(path: Path, **kwargs: Any) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", **kwargs)
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # torch.load raises many types (IndexError, EOFError...) for damaged data
        raise EdgeresError(
            f"'{path}' could not be read as a PyTorch file ({first_line(exc, limit=200)}); "
            "it may be truncated or corrupt: re-save or re-download it"
        ) from exc


def _load_pickled(
    path: Path,
    arch: str | None,
    overrides: MetaOverrides,
    unsafe_pickle: bool,
    arch_options: Mapping[str, Any],
) -> LoadedModel:
    try:
        obj = _torch_load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        from edgeres.model_safety import TRUST_HINT, is_wellformed_pickle

        if not is_wellformed_pickle(path):
            raise EdgeresError(
                f"'{path}' is damaged (it is not a readable PyTorch file); re-save or re-download it"
            ) from exc
        if not unsafe_pickle:
            raise EdgeresError(
                f"'{path}' holds a pickled Python object (probably a whole nn.Module), which can only be "
                "read by running code from the file; re-save its weights with "
                f"torch.save(model.state_dict(), ...) and name --arch, or {TRUST_HINT}"
            ) from exc
        return _load_unsafe(path, arch, overrides)
    if is_checkpoint(obj):
        meta, state = read_checkpoint(obj, path)
        if arch is not None and meta.arch is not None and arch != meta.arch:
            raise UsageError(f"{path} holds a {meta.arch} but --arch {arch} was given; drop --arch")
        built = _build(path, "checkpoint", overrides.apply(meta), state)
        extra = obj.get("extra")
        return replace(built, extra=extra) if isinstance(extra, Mapping) else built
    state = _unwrap_state_dict(obj, path)
    if arch is None:
        raise UsageError(f"'{path}' holds bare weights (a state_dict); name their architecture with --arch")
    fc = state.get("fc.weight")
    num_classes = overrides.num_classes or (int(fc.shape[0]) if fc is not None else None)
    meta = _default_meta(arch, num_classes, source=str(path)).replace(arch_options=dict(arch_options))
    return _build(path, "state_dict", overrides.apply(meta), state)


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(obj, Mapping):
        for key in _STATE_DICT_WRAPPERS:
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UsageError(
            f"'{path}' holds neither an edgeres checkpoint nor a state_dict of tensors; "
            "save the model's weights with torch.save(model.state_dict(), ...)"
        )
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):  # DataParallel / DDP wrappers
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _build(path: Path, fmt: SourceFormat, meta: ModelMeta, state: Mapping[str, torch.Tensor]) -> LoadedModel:
    from edgeres.models import get_model

    if meta.arch is None:
        raise UsageError(f"'{path}' does not record its architecture; name it with --arch")
    model = get_model(meta.arch, num_classes=meta.num_classes, **dict(meta.arch_options))
    _check_shapes(path, meta, model.state_dict(), state)
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise EdgeresError(
            f"the weights in '{path}' do not fit {meta.arch}: "
            f"missing {_few(missing)}, unexpected {_few(unexpected)}; check --arch"
        )
    model.eval()
    return LoadedModel(path, fmt, meta, model)


def _check_shapes(
    path: Path, meta: ModelMeta, expected: Mapping[str, torch.Tensor], state: Mapping[str, Any]
) -> None:
    """One line naming the first tensor whose shape does not fit, before load_state_dict raises."""
    import torch

    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise EdgeresError(f"'{path}' holds {type(value).__name__} under {key!r}, not a tensor")
        want = expected.get(key)
        if want is not None and tuple(want.shape) != tuple(value.shape):
            raise EdgeresError(
                f"the weights in '{path}' do not fit {meta.arch} with {meta.num_classes} classes: {key} is "
                f"{_shape(value)} in the file but {_shape(want)} in the model; check --arch and --num-classes"
            )


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape) or "a scalar"


def _load_torchscript(path: Path, arch: str | None, overrides: MetaOverrides, trusted: bool) -> LoadedModel:
    import torch

    from edgeres import model_safety

    if not trusted:
        with zipfile.ZipFile(path) as zf:
            model_safety.check_torchscript_archive(path, zf.namelist())
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as exc:
        reason = first_line(exc, limit=200)
        raise EdgeresError(f"'{path}' is a damaged TorchScript archive ({reason})") from exc
    if not trusted:
        model_safety.check_torchscript_ops(module, path)
    module.eval()
    meta = overrides.apply(_default_meta(arch, overrides.num_classes, source=str(path)))
    return LoadedModel(path, "torchscript", meta, module)


def _load_exported(path: Path, arch: str | None, overrides: MetaOverrides, trusted: bool) -> LoadedModel:
    import contextlib

    import torch

    from edgeres import model_safety

    if not trusted:
        try:
            model_safety.check_pt2_archive(path)
        except (zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
            raise _damaged_program(path, exc) from exc
    guard = contextlib.nullcontext() if trusted else model_safety.forced_weights_only()
    try:
        with guard:
            program = torch.export.load(str(path))
    except Exception as exc:  # torch.export raises many types for a damaged archive
        raise _damaged_program(path, exc) from exc
    if not trusted:
        model_safety.check_exported_ops(program.graph_module, path)
    try:
        module = program.module()
    except Exception as exc:
        raise _damaged_program(path, exc) from exc
    meta = overrides.apply(_default_meta(arch, overrides.num_classes, source=str(path)))
    return LoadedModel(path, "exported_program", meta, _frozen_mode(module))


def _frozen_mode(graph: nn.Module) -> nn.Module:
    """Wrap an exported program's module, whose train()/eval() raise, so stages can call eval()."""
    import torch

    class ExportedProgramModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.graph_module = graph

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.graph_module(x)

        def train(self, mode: bool = True) -> ExportedProgramModule:
            return self  # the program was exported in the mode it will run in

    return ExportedProgramModule()


def _load_unsafe(path: Path, arch: str | None, overrides: MetaOverrides) -> LoadedModel:
    import torch

    obj = _torch_load(path, weights_only=False)
    if not isinstance(obj, torch.nn.Module):
        raise UsageError(f"'{path}' holds a {type(obj).__name__}, not an nn.Module")
    obj.eval()
    meta = overrides.apply(_default_meta(arch, overrides.num_classes, source=str(path)))
    return LoadedModel(path, "pickle", meta, obj)


def _few(keys: list[str], limit: int = 4) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"


def _damaged_program(path: Path, exc: BaseException) -> EdgeresError:
    return EdgeresError(f"'{path}' is a damaged torch.export program ({first_line(exc, limit=200)})")
