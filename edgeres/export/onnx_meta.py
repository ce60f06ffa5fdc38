"""Model metadata inside an ONNX file: write it at export, read it back (or infer it) later.

edgeres stores the whole :class:`ModelMeta` as JSON under ``edgeres.meta`` in the
model's ``metadata_props``, plus a few readable keys for tools such as Netron.
An ONNX model from outside has none of that: its input size comes from its input
shape when fixed (else the caller's ``input_size``), its class count from its
output shape, and mean/std default to ImageNet's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta, Preprocessing, Provenance

__all__ = [
    "META_KEY",
    "check_classifier",
    "graph_inputs",
    "meta_props",
    "read_onnx_meta",
    "value_dims",
    "write_meta_props",
]

META_KEY = "edgeres.meta"
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


def meta_props(meta: ModelMeta) -> dict[str, str]:
    """The ``metadata_props`` edgeres writes: full JSON plus readable keys."""
    from edgeres.version import __version__

    pre = meta.preprocessing
    return {
        META_KEY: meta.to_json(),
        "edgeres.version": __version__,
        "edgeres.arch": meta.arch or "",
        "edgeres.num_classes": str(meta.num_classes),
        "edgeres.class_names": json.dumps(list(meta.class_names)),
        "edgeres.input_size": f"{pre.input_size[0]}x{pre.input_size[1]}",
        "edgeres.mean": ",".join(f"{v:g}" for v in pre.mean),
        "edgeres.std": ",".join(f"{v:g}" for v in pre.std),
    }


def write_meta_props(model: onnx.ModelProto, meta: ModelMeta) -> None:
    """Replace any edgeres keys in ``model.metadata_props`` with ``meta``'s; other keys stay."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith("edgeres.")]
    del model.metadata_props[:]
    for key, value in [*keep, *meta_props(meta).items()]:
        model.metadata_props.add(key=key, value=value)


def value_dims(value_info: onnx.ValueInfoProto) -> list[int | str | None] | None:
    """Dims of a tensor value (int fixed, str symbolic, None unknown); None when the rank is unknown."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    return dims


def _describe(values: Sequence[onnx.ValueInfoProto]) -> str:
    parts = []
    for v in values:
        dtype = onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()
        dims = value_dims(v)
        shape = "?" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
        parts.append(f"{v.name}: {dtype}{shape}")
    return ", ".join(parts) or "none"


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Real inputs: old exporters (IR < 4) also list the weights as graph inputs."""
    weights = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in weights]


def check_classifier(model: onnx.ModelProto, name: str = "") -> None:
    """Raise :class:`UsageError` unless ``model`` has one 4-D float input and one 2-D output."""
    label = name or model.graph.name or "model"
    inputs = graph_inputs(model)
    ok = len(inputs) == 1 and inputs[0].type.tensor_type.elem_type in _FLOAT_TYPES
    dims = value_dims(inputs[0]) if ok else None
    if not ok or dims is None or len(dims) != 4:
        raise UsageError(
            f"model {label} is not an image classifier: it has inputs {_describe(inputs)}; "
            "edgeres needs one 4-D float input (N, C, H, W)"
        )
    outputs = list(model.graph.output)
    out_dims = value_dims(outputs[0]) if len(outputs) == 1 else None
    if len(outputs) != 1 or (out_dims is not None and len(out_dims) != 2):
        raise UsageError(
            f"model {label} is not an image classifier: it has outputs {_describe(outputs)}; "
            "edgeres needs one (N, classes) output"
        )


def load_onnx(path: str | os.PathLike[str], *, load_weights: bool = False) -> onnx.ModelProto:
    """Read an ONNX file, with one-line errors for a missing or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"ONNX model '{path}' does not exist")
    try:
        return onnx.load(str(path), load_external_data=load_weights)
    except (DecodeError, ValueError, OSError, RuntimeError, onnx.checker.ValidationError) as exc:
        # ValidationError: external data missing, not a regular file, or outside the model's folder
        if _looks_like_pytorch(path):
            # a .pt given to a command that takes ONNX is a wrong call (2); a file named .onnx that
            # holds a PyTorch pickle is a damaged input (1)
            kind = EdgeresError if path.suffix.lower() == ".onnx" else UsageError
            raise kind(
                f"'{path}' is a PyTorch file, not ONNX: export it to ONNX first: edgeres export {path}"
            ) from None
        text = str(exc).strip().splitlines()
        reason = text[0][:200] if text else type(exc).__name__
        raise EdgeresError(
            f"'{path}' is not a valid ONNX model ({reason}); re-export it with edgeres"
        ) from exc


def _looks_like_pytorch(path: Path) -> bool:
    """A torch.save zip archive or pickle, a TorchScript or .pt2 program: what ``edgeres export`` reads."""
    try:
        with path.open("rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head == b"PK" or head[:1] == b"\x80"


def read_onnx_meta(
    path: str | os.PathLike[str],
    *,
    input_size: tuple[int, int] | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> ModelMeta:
    """The :class:`ModelMeta` of an ONNX classifier; given values win over stored ones."""
    path = Path(path)
    model = load_onnx(path)
    if not model.graph.node and not model.graph.input:
        raise EdgeresError(f"'{path}' holds no ONNX graph; it is not an ONNX model or it is damaged")
    check_classifier(model, path.name)
    props = {p.key: p.value for p in model.metadata_props}
    in_dims = value_dims(graph_inputs(model)[0]) or []
    fixed_hw = tuple(d for d in in_dims[2:] if isinstance(d, int))
    out_dims = value_dims(model.graph.output[0]) or []
    fixed_classes = out_dims[1] if len(out_dims) == 2 and isinstance(out_dims[1], int) else None

    if META_KEY in props:
        meta = ModelMeta.from_json(props[META_KEY])
    else:
        hw = (fixed_hw[0], fixed_hw[1]) if len(fixed_hw) == 2 else input_size
        if hw is None:
            raise UsageError(f"{path.name} has a dynamic input size; give it with --input-size (e.g. 224)")
        n = num_classes or fixed_classes or (len(class_names) if class_names else None)
        if n is None:
            raise UsageError(
                f"{path.name} does not fix its number of classes; give --num-classes or the class names"
            )
        pre = Preprocessing(input_size=hw, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        meta = ModelMeta(arch=None, num_classes=n, preprocessing=pre, provenance=Provenance(source=str(path)))

    pre = meta.preprocessing
    if input_size is not None and len(fixed_hw) == 2 and tuple(input_size) != fixed_hw:
        raise UsageError(
            f"{path.name} takes {fixed_hw[0]}x{fixed_hw[1]} inputs, not {input_size[0]}x{input_size[1]}; "
            "drop --input-size"
        )
    pre = Preprocessing(
        input_size=tuple(input_size) if input_size is not None else pre.input_size,  # type: ignore[arg-type]
        mean=mean or pre.mean,
        std=std or pre.std,
        resize=pre.resize,
    )
    n = num_classes or meta.num_classes
    if fixed_classes is not None and n != fixed_classes:
        raise UsageError(f"{path.name} has {fixed_classes} outputs, not {n} classes; drop --num-classes")
    names = tuple(class_names) if class_names is not None else meta.class_names
    if class_names is None and len(names) != n:
        names = ()
    if names and len(names) != n:
        raise UsageError(f"{len(names)} class names given for {path.name}, which has {n} outputs")
    return meta.replace(num_classes=n, class_names=names, preprocessing=pre)
