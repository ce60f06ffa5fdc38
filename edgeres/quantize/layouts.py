"""Where Q/DQ pairs go and what they hold, per target: the settings handed to ONNX Runtime's QDQQuantizer.

Three layouts come from one calibration:

``tensorrt``
    TensorRT's explicit-quantization form, as NVIDIA's Model Optimizer configures ONNX Runtime:
    symmetric INT8 (zero point 0) activations and weights, per-channel weights, per-tensor
    activations, Q/DQ on the inputs of Conv/Gemm/MatMul and on the *residual* input of a
    skip-connection Add, none on the outputs of weighted ops, on ReLU alone or on biases. The
    Add's other input, the output of the conv that TensorRT fuses the add into, stays float.

``cpu``
    ONNX Runtime's own QDQ layout for x86/Arm CPUs (uint8 asymmetric activations, int8
    symmetric per-channel weights, every op type ORT can quantize), which its graph optimizer
    turns into QLinearConv/QLinearAdd/QGemm kernels end to end.

``openvino``
    The cpu layout without the Q/DQ pair between a residual Add and the convolution on its main
    branch: OpenVINO fuses the sum into that convolution and rounds once, so this file says what
    OpenVINO computes and ONNX Runtime reproduces it (running those convolutions in float, so
    its CPU time on ONNX Runtime means little).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import onnx

from edgeres.errors import UsageError
from edgeres.quantize.targets import Target, WeightBits

__all__ = [
    "LAYOUTS",
    "QdqLayout",
    "ResidualAdd",
    "Target",
    "count_quantized_nodes",
    "default_cpu_op_types",
    "layout_for",
    "requantized_on_cpu",
    "residual_adds",
]

WEIGHTED_OPS: frozenset[str] = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def default_cpu_op_types() -> tuple[str, ...]:
    """Every op type the installed ONNX Runtime quantizes by default (what ``quantize_static`` uses)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return tuple(sorted(set(QLinearOpsRegistry) | set(QDQRegistry)))


@dataclass(frozen=True)
class QdqLayout:
    """One Q/DQ placement and number format.

    ``op_types`` are ONNX Runtime's ``op_types_to_quantize`` (None: all it supports);
    ``residual_only_adds`` marks the skip input of residual Adds for Q/DQ instead of
    quantizing Adds as ORT does (all inputs and the output); ``extra_options`` go to
    ``QDQQuantizer`` as they are. ``runtime`` is what the model is for: "onnxruntime" or
    "tensorrt". ``reduce_range`` is ONNX Runtime's 7-bit weight option (weights in -64..63):
    the int16 pair sums of u8s8 kernels on x86 CPUs without VNNI cannot overflow then.
    ``fused_sums`` drops the Q/DQ pair between each residual Add and the convolution on its main
    branch (see :func:`~edgeres.quantize.qdq_passes.sums_rounded_once`).
    """

    name: str
    activation_type: Literal["QInt8", "QUInt8"]
    weight_type: Literal["QInt8", "QUInt8"]
    per_channel: bool
    activation_symmetric: bool
    op_types: tuple[str, ...] | None = None
    residual_only_adds: bool = False
    extra_options: Mapping[str, Any] = field(default_factory=dict)
    runtime: Literal["onnxruntime", "tensorrt", "openvino"] = "onnxruntime"
    reduce_range: bool = False
    fused_sums: bool = False

    def resolved_op_types(self) -> tuple[str, ...]:
        return self.op_types if self.op_types is not None else default_cpu_op_types()

    def quantizer_options(self) -> dict[str, Any]:
        options = dict(self.extra_options)
        options["ActivationSymmetric"] = self.activation_symmetric
        options.setdefault("WeightSymmetric", True)
        return options

    def describe(self) -> dict[str, Any]:
        """Plain data for the model's ``edgeres.quantization`` metadata."""
        return {
            "runtime": self.runtime,
            "activations": self.activation_type,
            "weights": self.weight_type,
            "per_channel_weights": self.per_channel,
            "activation_symmetric": self.activation_symmetric,
            "weight_symmetric": bool(self.quantizer_options()["WeightSymmetric"]),
            "op_types": list(self.resolved_op_types()),
            "residual_add_inputs_only": self.residual_only_adds,
            "residual_sums_rounded_once": self.fused_sums,
            "weight_bits": 7 if self.reduce_range else 8,
        }


_TRT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_CPU = QdqLayout(
    name="cpu", activation_type="QUInt8", weight_type="QInt8", per_channel=True, activation_symmetric=False
)

LAYOUTS: dict[str, QdqLayout] = {
    "tensorrt": QdqLayout(
        name="tensorrt",
        activation_type="QInt8",
        weight_type="QInt8",
        per_channel=True,
        activation_symmetric=True,
        op_types=_TRT_OPS,
        residual_only_adds=True,
        extra_options={
            "WeightSymmetric": True,
            "AddQDQPairToWeight": True,
            "QuantizeBias": False,
            "DedicatedQDQPair": False,
            "OpTypesToExcludeOutputQuantization": list(_TRT_OPS),
            "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
        },
        runtime="tensorrt",
    ),
    "cpu": _CPU,
    "openvino": replace(_CPU, name="openvino", runtime="openvino", fused_sums=True),
}


def layout_for(target: str, bits: WeightBits = 8) -> QdqLayout:
    """``target``'s layout with ``bits``-bit weights (7 for the CPU layouts only: see :data:`WeightBits`)."""
    layout = LAYOUTS.get(target)
    if layout is None:
        raise UsageError(f"unknown quantization target '{target}'; choose one of {', '.join(LAYOUTS)}")
    if bits == 8:
        return layout
    if bits != 7 or layout.runtime == "tensorrt":
        raise UsageError(
            f"the {target} layout has 8-bit weights only; 7-bit weights are for the cpu and openvino layouts"
            if bits == 7
            else f"weight bits must be 8 or 7, got {bits!r}"
        )
    return replace(layout, reduce_range=True)


@dataclass(frozen=True)
class ResidualAdd:
    """A skip-connection Add: ``main`` comes from ``conv``, which absorbs the add; ``residual`` skips."""

    add: str
    main: str
    residual: str
    conv: str


def _backbone(node: onnx.NodeProto, producers: Mapping[str, onnx.NodeProto]) -> onnx.NodeProto | None:
    """The Conv this node's output comes straight from: Conv [-> BatchNorm] [-> Relu], as TensorRT fuses."""
    for skippable in ("Relu", "BatchNormalization"):
        if node.op_type == skippable:
            parent = producers.get(node.input[0])
            if parent is None:
                return None
            node = parent
    return node if node.op_type in ("Conv", "ConvTranspose") else None


def _ancestors(tensor: str, producers: Mapping[str, onnx.NodeProto], consts: set[str]) -> dict[str, int]:
    """Every non-constant tensor ``tensor`` depends on, with the fewest nodes between them."""
    depth = {tensor: 0}
    queue = deque([tensor])
    while queue:
        name = queue.popleft()
        node = producers.get(name)
        if node is None:
            continue
        for parent in node.input:
            if parent and parent not in consts and parent not in depth:
                depth[parent] = depth[name] + 1
                queue.append(parent)
    return depth


def residual_adds(graph: onnx.GraphProto) -> list[ResidualAdd]:
    """The skip-connection Adds of ``graph``, told apart as NVIDIA's Model Optimizer does.

    An Add of two computed tensors is residual when one of them comes straight from a Conv
    (its "backbone"); when both do, the input with the longer path back to their common
    ancestor is the main branch. An Add whose other input itself depends on that conv (a
    ConvNeXt-style bypass) is not a residual Add.
    """
    producers = {out: node for node in graph.node for out in node.output}
    consts = {init.name for init in graph.initializer}
    consts |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    found = []
    for node in graph.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        a, b = node.input
        if a in consts or b in consts or a not in producers or b not in producers:
            continue
        bone_a, bone_b = _backbone(producers[a], producers), _backbone(producers[b], producers)
        anc_a, anc_b = _ancestors(a, producers, consts), _ancestors(b, producers, consts)
        if bone_a is not None and bone_b is not None:
            if bone_a is bone_b:
                continue
            common = set(anc_a) & set(anc_b)
            if not common:
                continue
            lca = min(common, key=lambda t: anc_a[t] + anc_b[t])
            main_is_a = anc_a[lca] > anc_b[lca]
        elif bone_a is not None:
            if bone_a.output[0] in anc_b:
                continue
            main_is_a = True
        elif bone_b is not None:
            if bone_b.output[0] in anc_a:
                continue
            main_is_a = False
        else:
            continue
        main, residual, bone = (a, b, bone_a) if main_is_a else (b, a, bone_b)
        assert bone is not None
        found.append(ResidualAdd(node.name, main, residual, bone.name))
    return found


def count_quantized_nodes(graph: onnx.GraphProto) -> int:
    """Weighted ops (Conv, Gemm, MatMul) whose data and weight inputs both come from DequantizeLinear."""
    dq_outputs = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    return sum(
        1
        for node in graph.node
        if node.op_type in WEIGHTED_OPS and len(node.input) >= 2 and set(node.input[:2]) <= dq_outputs
    )


def requantized_on_cpu(graph: onnx.GraphProto, names: Sequence[str]) -> list[str]:
    """The float Conv/Gemm nodes among ``names`` that ONNX Runtime's CPU optimizer quantizes itself.

    Its WeightBiasQuantization pass gives a float-weight Conv/ConvTranspose/Gemm int8 weights
    when the node reads a per-tensor DequantizeLinear and its output goes, unbranched (ReLU or
    Clip allowed), to a QuantizeLinear.
    """
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    scalars = {t.name for t in graph.initializer if len(t.dims) == 0 or list(t.dims) == [1]}
    found = []
    for node in graph.node:
        if node.name not in names or node.op_type not in ("Conv", "ConvTranspose", "Gemm"):
            continue
        dq = producers.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in scalars:
            continue
        current = node
        while len(current.output) == 1 and len(nexts := consumers.get(current.output[0], [])) == 1:
            current = nexts[0]
            if current.op_type == "QuantizeLinear":
                found.append(node.name)
                break
            if current.op_type not in ("Relu", "Clip"):
                break
    return found
