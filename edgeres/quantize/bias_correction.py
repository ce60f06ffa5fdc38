"""Bias correction: remove the mean output shift that rounding the weights to int8 causes.

Rounding a layer's weights moves its outputs by ``(W_q - W) x``. Its mean over the data,
per output channel, is not zero in general (Nagel et al. 2019, "Data-Free Quantization
Through Weight Equalization and Bias Correction"), and a shifted mean passes through every
later layer. For each quantized Conv and Gemm this module measures, on the calibration
images, the mean of ``(W_q - W) x`` with ``x`` the layer's input **in the quantized model**
(the layers before it quantized, as they will run), and subtracts it from the layer's float
bias. The Q/DQ model is then written again from the corrected float model with the same
ranges, so both layouts quantize the corrected bias as they quantize any bias.

One pass over the calibration images suffices: a convolution is linear, so the mean of
``conv(x, W_q - W)`` over images and positions is the positional mean of
``conv(mean(x), W_q - W)``; the quantized model reports the batch mean of every layer input
(a ReduceMean added to the graph), so memory is one feature map per layer, whatever the number
of images. ``W_q`` is read from the Q/DQ model itself (its DequantizeLinear weights), so the
correction follows whatever per-channel scales the layout chose.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeres.errors import EdgeresError
from edgeres.quantize.bias_means import input_means

__all__ = [
    "BiasCorrection",
    "LayerShift",
    "NothingToCorrect",
    "correct_biases",
    "layer_shifts",
]

log = logging.getLogger(__name__)


class NothingToCorrect(EdgeresError):
    """The Q/DQ model has no quantized Conv or Gemm (every one kept in float)."""


@dataclass(frozen=True)
class LayerShift:
    """The mean output shift of one layer's int8 weights, removed from its bias."""

    node: str
    #: Mean and largest |shift| over the output channels, in the layer's output units.
    mean_abs: float
    max_abs: float

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "mean_abs": self.mean_abs, "max_abs": self.max_abs}


@dataclass(frozen=True)
class BiasCorrection:
    """What :func:`correct_biases` did."""

    layers: tuple[LayerShift, ...]
    num_images: int
    seconds: float
    #: Node -> the shift removed from its bias, per output channel (what a calibration cache keeps).
    shifts: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    #: Whether the shifts came from a calibration cache instead of a pass over images.
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": len(self.layers),
            "images": self.num_images,
            "seconds": round(self.seconds, 3),
            "reused": self.reused,
            "mean_abs_shift": float(np.mean([s.mean_abs for s in self.layers])) if self.layers else 0.0,
            "per_layer": [s.to_dict() for s in self.layers],
        }


@dataclass(frozen=True)
class _Layer:
    node: str
    op: str
    data: str  # the layer's input tensor in the Q/DQ model
    dw: np.ndarray  # float64: the dequantized int8 weights minus the float ones (all a shift needs)
    attrs: dict[str, Any]


def correct_biases(
    fp32_onnx: str | os.PathLike[str],
    qdq_onnx: str | os.PathLike[str],
    batches: Iterable[Mapping[str, np.ndarray]] | None,
    output: str | os.PathLike[str],
    *,
    disabled_optimizers: tuple[str, ...] = (),
    threads: int | None = None,
    stored: tuple[Mapping[str, np.ndarray], int] | None = None,
    reference: str | os.PathLike[str] | None = None,
) -> BiasCorrection:
    """Write ``fp32_onnx`` with every quantized layer's bias corrected to ``output``.

    ``qdq_onnx`` is the Q/DQ model written from ``fp32_onnx``; ``batches`` are the calibration
    batches (``{input: NCHW float32}``); ``disabled_optimizers`` are the ONNX Runtime optimizers
    to switch off so the CPU runs the Q/DQ model as its target would. ``stored`` (shifts by node,
    and the number of images they were measured on, as a calibration cache keeps them) skips the
    pass over the images. ``reference`` is the model whose float weights the int8 ones stand for
    when ``fp32_onnx`` already holds other weights (learned rounding writes ``q * s``).
    """
    import onnx
    from onnx import numpy_helper

    from edgeres.atomic import atomic_path

    start = time.perf_counter()
    fp32 = onnx.load(str(fp32_onnx))
    qdq = onnx.load(str(qdq_onnx))
    layers = _quantized_layers(onnx.load(str(reference)) if reference is not None else fp32, qdq)
    if not layers:
        raise NothingToCorrect(
            "bias correction: the model has no quantized Conv or Gemm whose bias could be corrected "
            "(are they all kept in float?); use --no-bias-correction"
        )
    if stored is not None:
        shifts, num_images = dict(stored[0]), stored[1]
        missing = [layer.node for layer in layers if layer.node not in shifts]
        if missing or len(shifts) != len(layers):
            raise EdgeresError(
                f"the stored bias corrections do not match the model's quantized layers "
                f"({len(shifts)} stored, {len(layers)} layers); run bias correction again with --calib"
            )
    else:
        if batches is None:
            raise EdgeresError("bias correction needs calibration images or stored corrections")
        means, num_images = input_means(qdq, layers, batches, disabled_optimizers, threads)
        shifts = layer_shifts(layers, means)
    constants = _Constants(fp32.graph)
    nodes = {n.name: n for n in fp32.graph.node}
    taken = {t.name for t in fp32.graph.initializer} | {o for n in fp32.graph.node for o in n.output}
    record = []
    for layer in layers:
        shift = np.asarray(shifts[layer.node], dtype=np.float64)
        node = nodes[layer.node]
        scale = float(layer.attrs.get("beta", 1.0)) if layer.op == "Gemm" else 1.0
        bias = np.zeros_like(shift)
        if len(node.input) > 2 and node.input[2]:
            found = constants.value(node.input[2])
            if shift.ndim != 1 or found is None or found.size not in (1, shift.size):
                raise EdgeresError(f"the bias of {layer.node} is not a constant of {shift.size} values")
            bias = np.broadcast_to(found.astype(np.float64).reshape(-1), shift.shape)
        # a bias of its own: exporters share equal constants between layers (or route them
        # through Identity nodes), and each layer's correction differs
        name = _unique(f"{layer.node}.bias_corrected", taken)
        fp32.graph.initializer.append(
            numpy_helper.from_array((bias - shift / scale).astype(np.float32), name)
        )
        while len(node.input) < 3:
            node.input.append("")
        node.input[2] = name
        record.append(LayerShift(layer.node, float(np.abs(shift).mean()), float(np.abs(shift).max())))
    _drop_unused(fp32.graph)
    with atomic_path(output) as tmp:
        onnx.save(fp32, str(tmp))
    result = BiasCorrection(
        tuple(record), num_images, time.perf_counter() - start, shifts=shifts, reused=stored is not None
    )
    log.info(
        "bias correction: %d layers on %d images, mean |shift| %.3g (%.1f s)",
        len(record),
        num_images,
        result.to_dict()["mean_abs_shift"],
        result.seconds,
    )
    return result


def layer_shifts(layers: Iterable[_Layer], input_means: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per layer, the mean over data and positions of ``(W_int8 - W) x``, per output channel."""
    import torch
    import torch.nn.functional as F

    shifts = {}
    for layer in layers:
        dw = torch.from_numpy(layer.dw)
        mean = torch.from_numpy(input_means[layer.data].astype(np.float64))
        if layer.op == "Conv":
            a = layer.attrs
            pads = list(a.get("pads", [0] * (2 * (dw.dim() - 2))))
            half = len(pads) // 2
            # ONNX pads are [x1_begin, x2_begin, ..., x1_end, x2_end]; F.pad wants the last axis first
            torch_pads = [p for axis in reversed(range(half)) for p in (pads[axis], pads[axis + half])]
            x = F.pad(mean[None], torch_pads)
            conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dw.dim() - 2]
            y = conv(
                x,
                dw,
                stride=list(a.get("strides", [1] * half)),
                dilation=list(a.get("dilations", [1] * half)),
                groups=int(a.get("group", 1)),
            )
            shifts[layer.node] = y.mean(dim=tuple(range(2, y.dim())))[0].numpy()
        else:  # Gemm: y = alpha * x B' + beta * C
            a = layer.attrs
            b = dw.T if int(a.get("transB", 0)) else dw
            shifts[layer.node] = (float(a.get("alpha", 1.0)) * (mean.reshape(-1) @ b)).numpy()
    return shifts


class _Constants:
    """Constant tensors of a graph by name: initializers, Constant nodes, and Identity chains of them."""

    def __init__(self, graph: Any) -> None:
        self._inits = {t.name: t for t in graph.initializer}
        self._producers = {o: n for n in graph.node for o in n.output}

    def value(self, name: str) -> np.ndarray | None:
        from onnx import helper, numpy_helper

        for _ in range(64):  # an Identity chain, never a cycle in a valid graph
            if name in self._inits:
                return np.asarray(numpy_helper.to_array(self._inits[name]))
            node = self._producers.get(name)
            if node is None:
                return None
            if node.op_type == "Identity":
                name = node.input[0]
            elif node.op_type == "Constant":
                attr = next((a for a in node.attribute if a.name == "value"), None)
                return (
                    None
                    if attr is None
                    else np.asarray(numpy_helper.to_array(helper.get_attribute_value(attr)))
                )
            else:
                return None
        return None


def _drop_unused(graph: Any) -> None:
    """Remove the Identity nodes and initializers that only fed the replaced biases."""
    outputs = {o.name for o in graph.output}
    while True:
        used = outputs | {i for n in graph.node for i in n.input}
        dead = [n for n in graph.node if n.op_type in ("Identity", "Constant") and not set(n.output) & used]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = outputs | {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def _unique(name: str, taken: set[str]) -> str:
    candidate, i = name, 1
    while candidate in taken:
        i += 1
        candidate = f"{name}_{i}"
    taken.add(candidate)
    return candidate


def _quantized_layers(fp32: Any, qdq: Any) -> list[_Layer]:
    """The Conv/Gemm nodes of ``qdq`` whose weights come through a DequantizeLinear."""
    from onnx import helper

    producers = {o: n for n in qdq.graph.node for o in n.output}
    q_inits = _Arrays({t.name: t for t in qdq.graph.initializer})
    constants = _Constants(fp32.graph)
    f_nodes = {n.name: n for n in fp32.graph.node}
    layers = []
    for node in qdq.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        w_dq = producers.get(node.input[1])
        if w_dq is None or w_dq.op_type != "DequantizeLinear" or node.name not in f_nodes:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm" and int(attrs.get("transA", 0)):
            continue
        if node.op_type == "Conv" and attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        found = constants.value(f_nodes[node.name].input[1])
        dw = _dequantize(w_dq, producers, q_inits)
        if found is None or dw is None or found.shape != dw.shape:
            continue
        dw -= found  # in place: a ResNet-50 would otherwise hold its weights twice in float64
        layers.append(_Layer(node.name, node.op_type, node.input[0], dw, attrs))
    return layers


class _Arrays(Mapping[str, np.ndarray]):
    """Initializers by name, each made an array only when read (a model's weights are not copied whole)."""

    def __init__(self, tensors: Mapping[str, Any]) -> None:
        self._tensors = tensors

    def __getitem__(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return np.asarray(numpy_helper.to_array(self._tensors[name]))

    def __contains__(self, name: object) -> bool:  # without converting the tensor, as Mapping's would
        return name in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def _dequantize(dq: Any, producers: Mapping[str, Any], inits: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The float value of a DequantizeLinear of constant int8 weights (stored or quantized in the graph)."""
    from onnx import helper

    if len(dq.input) < 2 or dq.input[1] not in inits:
        return None
    scale = inits[dq.input[1]].astype(np.float64)
    zero = inits[dq.input[2]].astype(np.float64) if len(dq.input) > 2 and dq.input[2] in inits else 0.0
    axis = next((helper.get_attribute_value(a) for a in dq.attribute if a.name == "axis"), 1)
    src = dq.input[0]
    if src in inits:
        q = inits[src].astype(np.float64)
    else:
        qn = producers.get(src)
        if qn is None or qn.op_type != "QuantizeLinear" or qn.input[0] not in inits:
            return None
        qzero = inits.get(qn.input[2]) if len(qn.input) > 2 else None
        info = np.iinfo(qzero.dtype) if qzero is not None else np.iinfo(np.uint8)
        w = inits[qn.input[0]].astype(np.float64)
        q = np.clip(np.rint(w / _along(scale, axis, w.ndim)) + _along(zero, axis, w.ndim), info.min, info.max)
    return (q - _along(zero, axis, q.ndim)) * _along(scale, axis, q.ndim)


def _along(v: Any, axis: int, ndim: int) -> Any:
    """A per-channel vector shaped to broadcast along ``axis`` of an ``ndim`` array (scalars as they are)."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape)
