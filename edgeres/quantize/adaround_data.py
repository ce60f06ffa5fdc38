"""What learned rounding optimizes on: each layer's weights and scales, its input from the partly
rounded Q/DQ model, and its FP32 output, as a bounded sample of positions.

A layer is a quantized Conv (2-D) or Gemm of the Q/DQ model with symmetric weight scales. Its
float weights come from the prepared float model (:func:`edgeres.quantize.qdq.prepare_onnx`,
BatchNorm folded), its scales and integer range from the Q/DQ model's weight DequantizeLinear.

:func:`patch_rows` cuts a layer's input into the patches of the sampled output positions, as
ONNX Runtime's Conv reads them; :mod:`edgeres.quantize.adaround_walk` runs the models and draws
the positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeres.errors import EdgeresError

__all__ = ["RoundingLayer", "patch_rows", "rounding_layers", "set_layer_integers"]


@dataclass(frozen=True)
class RoundingLayer:
    node: str
    op: str  # "Conv" or "Gemm"
    data: str  # the layer's (quantized) input tensor in the Q/DQ model
    output: str  # the layer's output tensor in the float model
    #: Float weights with the channel axis first, as (channels, inputs per channel), float64.
    w: np.ndarray
    shape: tuple[int, ...]  # the weight initializer's own shape
    axis: int  # the channel axis of the weight initializer
    scale: np.ndarray  # per channel (channels,), float32 as the model stores it
    qmin: int
    qmax: int
    bias: np.ndarray  # per output channel, float64 (zeros where the layer has none)
    attrs: Mapping[str, Any]
    #: The only consumer of the output is a Relu: the loss compares outputs after it.
    relu: bool
    weight: str  # the weight initializer's name in the float model
    groups: int = 1

    @property
    def nearest(self) -> np.ndarray:
        """Round-to-nearest integers (as ONNX Runtime's quantizer computes them, in float32)."""
        ratio = self.w.astype(np.float32) / self.scale[:, None]
        return np.clip(np.rint(ratio), self.qmin, self.qmax).astype(np.int32)

    @property
    def fixed(self) -> np.ndarray:
        """The weights at their channel's absmax (or of an all-zero channel): they set the scale,
        so they keep their nearest integer."""
        w = np.abs(self.w.astype(np.float32))
        top = w.max(axis=1, keepdims=True)
        return (w == top) | (top == 0)

    def weights(self, q: np.ndarray) -> np.ndarray:
        """Float32 weights, shaped as the initializer, that quantize back to the integers ``q``."""
        w = (q.astype(np.float32) * self.scale[:, None]).astype(np.float32)
        moved = [self.shape[self.axis], *[d for i, d in enumerate(self.shape) if i != self.axis]]
        return np.moveaxis(w.reshape(moved), 0, self.axis)


def rounding_layers(fp32: Any, qdq: Any, qmax: int) -> list[RoundingLayer]:
    """The Conv/Gemm layers of ``qdq`` (ModelProto) whose int8 weights learned rounding can choose."""
    from onnx import helper, numpy_helper

    from edgeres.quantize.bias_correction import _Constants

    producers = {o: n for n in qdq.graph.node for o in n.output}
    q_inits = {t.name: t for t in qdq.graph.initializer}
    constants = _Constants(fp32.graph)
    f_nodes = {n.name: n for n in fp32.graph.node}
    f_inits = {t.name for t in fp32.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    uses: dict[str, int] = {}
    for n in fp32.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
            uses[i] = uses.get(i, 0) + 1
    layers = []
    for node in qdq.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2 or node.name not in f_nodes:
            continue
        dq = producers.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 2 or dq.input[1] not in q_inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        f_node = f_nodes[node.name]
        weight = f_node.input[1]
        if weight not in f_inits or uses.get(weight, 0) != 1:
            continue  # a weight shared by two layers cannot round two ways
        if node.op_type == "Conv" and (
            attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or len(attrs.get("kernel_shape", [0, 0])) != 2
        ):
            continue
        if node.op_type == "Gemm" and int(attrs.get("transA", 0)):
            continue
        w = constants.value(weight)
        if w is None or (node.op_type == "Conv" and w.ndim != 4) or (node.op_type == "Gemm" and w.ndim != 2):
            continue
        zero = (
            numpy_helper.to_array(q_inits[dq.input[2]])
            if len(dq.input) > 2 and dq.input[2] in q_inits
            else None
        )
        if zero is not None and np.any(zero != 0):
            continue  # asymmetric weights: left to nearest rounding
        axis_attr = next((helper.get_attribute_value(a) for a in dq.attribute if a.name == "axis"), 1)
        # the output-channel axis: Conv weights (out, in, kh, kw); Gemm's B is (K, N), or (N, K) transposed
        axis = 1 if node.op_type == "Gemm" and not int(attrs.get("transB", 0)) else 0
        scale = numpy_helper.to_array(q_inits[dq.input[1]]).astype(np.float32).reshape(-1)
        channels = w.shape[axis]
        if scale.size == 1:
            scale = np.full(channels, scale[0], np.float32)
        elif scale.size != channels or int(axis_attr) % w.ndim != axis:
            continue
        if not np.all(scale > 0):
            continue
        bias = np.zeros(channels)
        if len(f_node.input) > 2 and f_node.input[2]:
            b = constants.value(f_node.input[2])
            if b is None or b.size not in (1, channels):
                continue
            bias = np.broadcast_to(b.astype(np.float64).reshape(-1), (channels,)).copy()
            if node.op_type == "Gemm":
                bias = bias * float(attrs.get("beta", 1.0))
        out = f_node.output[0]
        after = consumers.get(out, [])
        layers.append(
            RoundingLayer(
                node=node.name,
                op=node.op_type,
                data=node.input[0],
                output=out,
                w=np.moveaxis(w.astype(np.float64), axis, 0).reshape(channels, -1),
                shape=tuple(w.shape),
                axis=axis,
                scale=scale,
                qmin=-qmax,
                qmax=qmax,
                bias=bias,
                attrs=attrs,
                relu=len(after) == 1
                and after[0].op_type == "Relu"
                and out not in {o.name for o in fp32.graph.output},
                weight=weight,
                groups=int(attrs.get("group", 1)),
            )
        )
    return layers


def set_layer_integers(qdq: Any, layer: RoundingLayer, q: np.ndarray) -> None:
    """Make ``qdq``'s DequantizeLinear of ``layer``'s weights read the integers ``q`` (in place).

    The DequantizeLinear gets an int8 initializer of its own, whichever way the layout stores the
    weights (int8, or float through a QuantizeLinear): this copy is only run, never written.
    """
    from onnx import numpy_helper

    producers = {o: n for n in qdq.graph.node for o in n.output}
    node = next(n for n in qdq.graph.node if n.name == layer.node)
    dq = producers[node.input[1]]
    moved = [layer.shape[layer.axis], *[d for i, d in enumerate(layer.shape) if i != layer.axis]]
    ints = np.moveaxis(q.astype(np.int8).reshape(moved), 0, layer.axis)
    name = f"{layer.node}.learned_rounding"
    tensor = numpy_helper.from_array(np.ascontiguousarray(ints), name)
    # replaced in place, never by rebuilding the list: protobuf frees a removed message's memory
    # only with the whole model, so a rebuilt list would keep a copy of every weight per layer
    same = next((t for t in qdq.graph.initializer if t.name == name), None)
    if same is not None:
        same.CopyFrom(tensor)
    else:
        qdq.graph.initializer.append(tensor)
    dq.input[0] = name


def _patches(layer: RoundingLayer, x: np.ndarray) -> Any:
    """The input patches of every output position, as a (images, positions, inputs) float32 tensor."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if layer.op == "Gemm":
        return t.reshape(t.shape[0], 1, -1)
    a = layer.attrs
    top, left, bottom, right = list(a.get("pads", [0, 0, 0, 0]))
    t = F.pad(t, [left, right, top, bottom])
    cols = F.unfold(
        t,
        kernel_size=tuple(layer.shape[2:]),
        dilation=tuple(a.get("dilations", [1, 1])),
        stride=tuple(a.get("strides", [1, 1])),
    )
    return cols.transpose(1, 2)


def patch_rows(layer: RoundingLayer, x: np.ndarray, pick: np.ndarray, positions: int) -> Any:
    """``layer``'s input patches of the images ``x`` at the output positions ``pick`` (images, take):
    a float32 tensor (images * take, inputs per patch), in image order."""
    import torch

    inputs = x.shape[1] * int(np.prod(layer.shape[2:])) if layer.op == "Conv" else int(np.prod(x.shape[1:]))
    chunk = max(1, (64 << 20) // max(1, 4 * positions * inputs))  # a whole batch's patches can be GBs
    rows = []
    for s in range(0, len(x), chunk):
        patches = _patches(layer, x[s : s + chunk])  # (n, positions, inputs)
        if patches.shape[1] != positions:
            raise EdgeresError(
                f"learned rounding: the input patches of {layer.node} ({patches.shape[1]} positions) "
                f"do not match its output ({positions} positions)"
            )
        n = patches.shape[0]
        taken = patches[torch.arange(n)[:, None], torch.from_numpy(pick[s : s + n])]
        rows.append(taken.reshape(n * pick.shape[1], -1))
    return torch.cat(rows)
