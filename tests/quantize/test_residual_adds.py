"""Which Adds are residual (the Q/DQ layout quantizes their skip input), on tiny hand-made graphs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeres.quantize.layouts import residual_adds


def _graph(nodes: list[onnx.NodeProto], inputs: tuple[str, ...] = ("x",)) -> onnx.GraphProto:
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 2, 2]) for n in (*inputs, "out")]
    return helper.make_graph(nodes, "g", vi[:-1], [vi[-1]], [w])


def _found(graph: onnx.GraphProto) -> list[tuple[str, str, str, str]]:
    return [(r.add, r.main, r.residual, r.conv) for r in residual_adds(graph)]


def _node(op: str, inputs: list[str], output: str) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], output + "_node")


def test_a_transposed_conv_is_a_backbone() -> None:
    nodes = [
        _node("Relu", ["x"], "r"),
        _node("ConvTranspose", ["r", "w"], "t"),
        _node("Add", ["t", "r"], "out"),
        _node("Add", ["r", "t"], "out2"),  # the conv on the right
    ]
    assert _found(_graph(nodes)) == [("out_node", "t", "r", "t_node"), ("out2_node", "t", "r", "t_node")]


def test_adds_that_are_not_residual_do_not_stop_the_search() -> None:
    """Each skipped Add comes before the one residual Add, which is still found."""
    nodes = [
        helper.make_node(
            "Constant", [], ["k"], "k_node", value=numpy_helper.from_array(np.ones(1, np.float32))
        ),
        _node("Relu", ["x"], "r"),
        _node("Conv", ["r", "w"], "c"),
        _node("Add", ["c", "k"], "s1"),  # a Constant node's output: a bias, not a skip
        _node("Add", ["k", "c"], "s2"),
        _node("Add", ["c", "x"], "s3"),  # a graph input
        _node("Mul", ["c", "r"], "m"),  # not an Add
        _node("Add", ["c", "c"], "s4"),  # the same conv twice
        _node("Relu", ["c"], "rc"),
        _node("Add", ["c", "rc"], "s5"),  # bypass that depends on the conv itself
        _node("Add", ["rc", "c"], "s6"),
        _node("Sigmoid", ["c"], "sc"),  # not a backbone, but it depends on the conv
        _node("Add", ["c", "sc"], "s5b"),  # bypass on the right, conv on the left
        _node("Add", ["sc", "c"], "s6b"),  # and the other way round
        _node("Add", ["r", "r"], "s7"),  # no conv on either side
        _node("Conv", ["y", "w"], "cy"),
        _node("Add", ["c", "cy"], "s8"),  # two convs, no common ancestor but their weight
        _node("Add", ["c", "r"], "out"),
    ]
    assert _found(_graph(nodes, ("x", "y"))) == [("out_node", "c", "r", "c_node")]


def test_two_equal_branches_take_the_second_as_main() -> None:
    nodes = [_node("Conv", ["x", "w"], "a"), _node("Conv", ["x", "w"], "b"), _node("Add", ["a", "b"], "out")]
    assert _found(_graph(nodes)) == [("out_node", "b", "a", "b_node")]


def test_the_main_branch_is_judged_at_the_nearest_common_ancestor() -> None:
    """At zz (3 + 2 nodes away) a is the longer branch; at m (2 + 4) b would be: zz is nearest."""
    nodes = [
        _node("Relu", ["zz"], "m"),
        _node("Conv", ["m", "w"], "a1"),
        _node("Conv", ["a1", "w"], "a"),
        _node("Conv", ["m", "w"], "v"),
        _node("Conv", ["v", "w"], "u"),
        _node("Add", ["u", "zz"], "s"),
        _node("Conv", ["s", "w"], "b"),
        _node("Add", ["a", "b"], "out"),
    ]
    assert _found(_graph(nodes, ("zz",))) == [("out_node", "a", "b", "a_node")]


def test_ancestors_are_followed_past_a_graph_input() -> None:
    """a's path to the shared x passes a node that also reads the graph input g."""
    nodes = [
        _node("Relu", ["x"], "n"),
        _node("Mul", ["g", "n"], "p"),
        _node("Conv", ["p", "w"], "a"),
        _node("Conv", ["x", "w"], "b1"),
        _node("Conv", ["b1", "w"], "b2"),
        _node("Conv", ["b2", "w"], "b"),
        _node("Add", ["a", "b"], "out"),
    ]
    assert _found(_graph(nodes, ("x", "g"))) == [("out_node", "b", "a", "b_node")]
