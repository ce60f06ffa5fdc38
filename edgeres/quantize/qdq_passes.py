"""Rewrites of a Q/DQ graph after ONNX Runtime's quantizer has placed its pairs.

Each pass takes out a QuantizeLinear -> DequantizeLinear pair that the quantizer writes but the
runtime the layout is for does not compute (a rounding no kernel gains from, or one the runtime
fuses away), so the file says what that runtime computes and ONNX Runtime, running the file as
written, reproduces it.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from edgeres.quantize.layouts import ResidualAdd

__all__ = ["float_outputs", "sums_rounded_once"]


def _links(graph: onnx.GraphProto) -> tuple[dict[str, onnx.NodeProto], dict[str, list[onnx.NodeProto]]]:
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return producers, consumers


def float_outputs(graph: onnx.GraphProto) -> list[str]:
    """Drop the QuantizeLinear -> DequantizeLinear pair on each graph output; returns the outputs.

    ONNX Runtime's quantizer quantizes a Gemm's output like any other, so the cpu layout's logits
    came out on a grid of 256 levels: no kernel runs faster for it, and where the top two classes
    lie within a step of each other, a one-step difference between two runtimes' rounding (or
    between INT8 and FP32) decides the class. The producer now writes the output itself.
    """
    producers, consumers = _links(graph)
    outputs = {o.name for o in graph.output}
    changed = []
    for out in graph.output:
        dq = producers.get(out.name)
        if dq is None or dq.op_type != "DequantizeLinear" or consumers.get(out.name):
            continue
        q = producers.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or len(consumers.get(q.output[0], [])) != 1:
            continue
        source = q.input[0]
        maker = producers.get(source)
        if maker is None or source in outputs:  # a graph input or another output: leave it
            continue
        maker.output[list(maker.output).index(source)] = out.name
        for node in consumers.get(source, []):
            if node is not q:
                node.input[:] = [out.name if name == source else name for name in node.input]
        graph.node.remove(q)
        graph.node.remove(dq)
        changed.append(out.name)
    return changed


def sums_rounded_once(graph: onnx.GraphProto, adds: Sequence[ResidualAdd]) -> list[str]:
    """Drop the Q/DQ pair between each residual Add and the convolution on its main branch.

    ONNX Runtime's cpu layout rounds a block's last convolution to int8 and then the sum again
    (QLinearConv, then QLinearAdd). OpenVINO fuses the Add into that convolution, adds the
    residual to the int32 accumulator and rounds once, whatever the file says between them; so
    the same file's classes differ between the two runtimes wherever that one extra rounding
    decides. Without the pair the file says what OpenVINO computes. ``adds`` come from
    :func:`~edgeres.quantize.layouts.residual_adds` on the float model; a pair is dropped only
    where the convolution's output feeds the Add alone, through the pair alone. Returns the
    Adds changed.
    """
    producers, consumers = _links(graph)
    nodes = {node.name: node for node in graph.node}
    changed = []
    for add in adds:
        node, conv = nodes.get(add.add), producers.get(add.main)
        if node is None or conv is None or conv.name != add.conv:
            continue
        for i, name in enumerate(node.input):
            dq = producers.get(name)
            q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if dq is None or q is None or q.op_type != "QuantizeLinear" or q.input[0] != add.main:
                continue
            if consumers.get(q.output[0]) != [dq] or consumers.get(dq.output[0]) != [node]:
                continue
            if consumers.get(add.main) != [q]:
                continue
            node.input[i] = add.main
            graph.node.remove(q)
            graph.node.remove(dq)
            changed.append(add.add)
            break
    return changed
