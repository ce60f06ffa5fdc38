"""Learned rounding's samples, layer after layer, from one pass of each model.

Layer k's rounding is learned on its input from the Q/DQ model with layers 0..k-1 already
rounded, so the Q/DQ model cannot run once for all layers; running it from the images up to
every layer again costs a pass per layer, quadratic in depth (ResNet-50 at 224 on 512 images:
about half an hour of fetching on 2 cores). :class:`LayerSampler` cuts the Q/DQ graph before
each layer and keeps on disk, for every image, the tensors that cross the current cut (the
*frontier*): layer k's input comes from running only the nodes between cut k-1 and cut k on the
frontier, with layer k-1's learned integers in place. Activation DequantizeLinear nodes run on
both sides of a cut, so what crosses it is int8 wherever the layout quantizes, and weights and
other constants are recomputed where they are used.

The FP32 targets of every layer come from one pass of the float model, at output positions drawn
beforehand per layer and image with a seeded generator (a rerun samples the same ones); they are
kept on disk per layer until the layer is learned. Memory stays bounded whatever the model's
depth or the number of images: a few images' activations at a time, and each layer's samples.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.errors import EdgeresError
from edgeres.memory import release_free_memory
from edgeres.quantize.adaround_data import RoundingLayer, patch_rows
from edgeres.quantize.bias_means import cpu_session

__all__ = ["LayerSampler"]

#: Images per ONNX Runtime run: activations of a ResNet-50 at 224 take about 30 MB an image.
RUN_IMAGES = 8


@dataclass(frozen=True)
class _Segment:
    """The nodes between two cuts: what they read from the frontier and what they add to it."""

    nodes: tuple[int, ...]  # node indexes, in graph order (constants and activation DQs included)
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    data: str  # the layer's input, taken from this segment's run
    drops: tuple[str, ...]  # frontier tensors no later segment reads


class _Graph:
    """What the cut plan needs of a graph: producers, constants, activation DequantizeLinears."""

    def __init__(self, graph: Any) -> None:
        import onnx

        self.nodes = list(graph.node)
        self.inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
        self.producer: dict[str, int] = {}
        self.const: set[str] = {t.name for t in graph.initializer}
        self.cheap: set[int] = set()
        self._outer: list[list[str]] = []
        for i, n in enumerate(self.nodes):
            graphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            sub = [a for a in n.attribute if a.type in graphs]
            outer: list[str] = []
            for a in sub:  # a subgraph's outer-scope names are inputs too
                for g in [a.g, *a.graphs]:
                    outer.extend(x for m in g.node for x in m.input if x in self.producer or x in self.inputs)
            self._outer.append(outer)
            if not sub and all(x in self.const for x in self.uses(i)) and not n.op_type.startswith("Random"):
                self.const.update(n.output)
            elif n.op_type == "DequantizeLinear" and not sub:
                self.cheap.add(i)  # run wherever its output is read: what crosses a cut is its int8 input
            for o in n.output:
                self.producer[o] = i

    def uses(self, i: int) -> list[str]:
        """Node ``i``'s inputs as they are now (learned integers rewire weight DequantizeLinears)."""
        return [x for x in self.nodes[i].input if x] + self._outer[i]

    def roots(self, name: str) -> set[str]:
        """The tensors a cut must carry for ``name`` to be computed after it."""
        if name in self.const:
            return set()
        p = self.producer.get(name)
        if p is None or p not in self.cheap:
            return {name}
        return set().union(*(self.roots(x) for x in self.uses(p)))

    def closure(self, targets: Sequence[str], stop: set[str]) -> list[int]:
        """The nodes that compute ``targets`` from the tensors in ``stop`` (and the graph's inputs)."""
        keep: set[int] = set()
        needed = [t for t in targets if t not in stop]
        seen: set[str] = set()
        while needed:
            name = needed.pop()
            if name in seen or name in stop:
                continue
            seen.add(name)
            p = self.producer.get(name)
            if p is None or p in keep:
                continue
            keep.add(p)
            needed.extend(self.uses(p))
        return sorted(keep)


def _plan(graph: _Graph, layers: Sequence[RoundingLayer]) -> list[_Segment]:
    """One segment per layer: the nodes from the previous layer's node up to this layer's."""
    index = {n.name: i for i, n in enumerate(graph.nodes)}
    cuts = [index[layer.node] for layer in layers]
    if cuts != sorted(cuts) or len(set(cuts)) != len(cuts):
        raise EdgeresError("learned rounding: the layers are not in the order of the graph")
    seg_of: dict[int, int] = {}
    for s, end in enumerate(cuts):
        for i in range(cuts[s - 1] if s else 0, end):
            outs = graph.nodes[i].output
            if outs and outs[0] not in graph.const and i not in graph.cheap:
                seg_of[i] = s
    produced: list[set[str]] = [set() for _ in layers]
    reads: list[set[str]] = [graph.roots(layer.data) for layer in layers]
    for i, s in seg_of.items():
        produced[s].update(graph.nodes[i].output)
        for x in graph.uses(i):
            reads[s] |= graph.roots(x)
    for s in range(len(layers)):
        reads[s] -= produced[s]
    missing = set().union(*reads) - set().union(*produced) - graph.inputs
    if missing:
        raise EdgeresError(f"learned rounding: cannot cut the graph ({sorted(missing)[0]} has no producer)")
    last_read = {t: s for s in range(len(layers)) for t in reads[s]}
    segments = []
    for s, layer in enumerate(layers):
        later = set().union(*reads[s + 1 :]) if s + 1 < len(layers) else set()
        writes = produced[s] & later
        nodes = graph.closure([*sorted(writes), layer.data], reads[s])
        if any(seg_of.get(i, s) != s for i in nodes):
            raise EdgeresError(f"learned rounding: cannot cut the graph before {layer.node}")
        drops = tuple(sorted(t for t in reads[s] if last_read[t] == s))
        segments.append(
            _Segment(tuple(nodes), tuple(sorted(reads[s])), tuple(sorted(writes)), layer.data, drops)
        )
    return segments


class _Store:
    """Tensors of every image, one raw file each, written and read a few rows at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        self.files: dict[str, Path] = {}
        self.bytes = 0  # what the files hold now
        self._made = 0

    def append(self, name: str, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows)
        if name not in self.files:
            self._made += 1
            self.files[name] = self.folder / f"t{self._made}.bin"
            self.meta[name] = (rows.dtype, rows.shape[1:])
        elif self.meta[name] != (rows.dtype, rows.shape[1:]):
            raise EdgeresError(f"learned rounding: {name} changes shape between images ({rows.shape[1:]})")
        try:
            with open(self.files[name], "ab") as f:
                f.write(rows.data)  # not ndarray.tofile: its errors do not say why (a full disk)
        except OSError as e:
            raise EdgeresError(
                f"learned rounding: cannot keep activations in {self.folder}: {e.strerror or e}; "
                "free space there or set TMPDIR to a folder on a larger disk"
            ) from e
        self.bytes += rows.nbytes

    def read(self, name: str, start: int, count: int) -> np.ndarray:
        dtype, shape = self.meta[name]
        size = int(np.prod(shape))
        data = np.fromfile(self.files[name], dtype, count=count * size, offset=start * size * dtype.itemsize)
        return data.reshape(count, *shape)

    def drop(self, name: str) -> None:
        path = self.files.pop(name)
        self.bytes -= path.stat().st_size if path.exists() else 0
        path.unlink(missing_ok=True)
        self.meta.pop(name)


class _Rows:
    """Rows added in order to one tensor of ``total`` rows, made at the first add: a layer's
    patches are held once, not as pieces and then their concatenation."""

    def __init__(self, total: int) -> None:
        self.total, self.at = total, 0
        self.data: Any = None

    def add(self, piece: Any) -> None:
        import torch

        if self.data is None:
            self.data = torch.empty((self.total, piece.shape[1]), dtype=piece.dtype)
        if self.at + len(piece) > self.total:
            raise EdgeresError(f"learned rounding: more input patches than the {self.total} drawn")
        self.data[self.at : self.at + len(piece)] = piece
        self.at += len(piece)


class LayerSampler:
    """Samples of ``layers`` (in graph order), asked for in order: ``samples(k)`` after layers
    0..k-1 have their integers in ``qdq`` (``set_layer_integers``).

    ``qdq`` is the Q/DQ model (ModelProto, changed in place by the caller as layers are rounded),
    ``fp32`` the prepared float model; ``images`` batches of model inputs (NCHW float32).
    ``max_patches[k]`` bounds layer k's samples; layers not in ``wanted`` are passed through,
    not sampled. A model exported for a fixed batch size is fed batches of that size (a
    remainder is left out). Use as a context manager: the frontier's folder is removed on exit.
    """

    def __init__(self, qdq: Any, fp32: Any, layers: Sequence[RoundingLayer], images: Sequence[np.ndarray], *,
                 max_patches: Sequence[int], wanted: Sequence[int], seed: int,
                 disabled_optimizers: Sequence[str] = (), threads: int | None = None) -> None:  # fmt: skip
        self.qdq, self.fp32, self.layers = qdq, fp32, list(layers)
        self.images = images
        self.max_patches, self.wanted = list(max_patches), sorted(set(wanted))
        self.seed, self.disabled, self.threads = seed, tuple(disabled_optimizers), threads
        self.graph = _Graph(qdq.graph)
        self.segments = _plan(self.graph, self.layers)
        self.done = -1  # the last segment run
        self._tmp = Path(tempfile.mkdtemp(prefix="edgeres-rounding-"))
        self.frontier = _Store(self._tmp)
        self.targets: _Store | None = None
        self.picks: dict[int, np.ndarray] = {}
        self.positions: dict[int, int] = {}
        #: The most the temporary files held at once (bytes): the frontier and the FP32 targets.
        self.peak_bytes = 0
        dim = qdq.graph.input[0].type.tensor_type.shape.dim if qdq.graph.input else []
        fixed = len(dim) and dim[0].HasField("dim_value") and dim[0].dim_value > 0
        self.fixed = dim[0].dim_value if fixed else 0
        self.step = self.fixed or RUN_IMAGES
        total = sum(len(b) for b in images)
        self.rows = total - total % self.fixed if self.fixed else total

    def __enter__(self) -> LayerSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def samples(self, k: int) -> tuple[Any, Any]:
        """``(inputs, targets)`` of layer ``k``: float32 tensors (patches, inputs per patch) and
        (patches, channels)."""
        import torch

        if k <= self.done or k not in self.wanted:
            raise EdgeresError(f"learned rounding: samples of layer {k} asked for out of order")
        if self.rows == 0:
            raise EdgeresError("learned rounding got no calibration images")
        if self.targets is None:
            self._fp32_pass()
        assert self.targets is not None
        while self.done < k - 1:
            self._run(self.done + 1, None)
        xs = _Rows(self.picks[k].size)
        self._run(k, xs)
        name = f"layer{k}"
        y = torch.from_numpy(self.targets.read(name, 0, self.picks[k].size))
        self.targets.drop(name)
        x = xs.data if xs.data is not None else torch.empty((0, 0))
        if xs.at != y.shape[0]:
            raise EdgeresError(f"learned rounding: {xs.at} input patches of {self.layers[k].node} "
                               f"for {y.shape[0]} outputs")  # fmt: skip
        return x, y

    def _chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, images)``: the images, ``self.step`` at a time."""
        row, carry = 0, list[np.ndarray]()
        for batch in self.images:
            s = 0
            while s < len(batch):
                piece = batch[s : s + self.step - sum(len(c) for c in carry)]
                carry.append(piece)
                s += len(piece)
                if sum(len(c) for c in carry) == self.step:
                    part = carry[0] if len(carry) == 1 else np.concatenate(carry)
                    yield row, part
                    row, carry = row + len(part), []
        if carry and not self.fixed:
            yield row, np.concatenate(carry)

    def _fp32_pass(self) -> None:
        """Every wanted layer's FP32 output at its drawn positions, from one pass of the float model."""
        self.targets = _Store(self._tmp / "targets")
        self.targets.folder.mkdir()
        graph = _Graph(self.fp32.graph)
        outputs = [self.layers[k].output for k in self.wanted]
        model = _model(self.fp32, graph, outputs, graph.inputs, {})
        session = cpu_session(model, (), self.threads, arena=False)
        feed = session.get_inputs()[0].name
        for row, part in self._chunks():
            for k, y in zip(self.wanted, session.run(outputs, {feed: part}), strict=True):
                y = y.reshape(len(part), y.shape[1], -1)
                pick = self._pick(k, y.shape[2])[row : row + len(part)]
                taken = np.take_along_axis(y, pick[:, None, :], axis=2)  # (n, channels, take)
                self.targets.append(f"layer{k}", taken.transpose(0, 2, 1).reshape(-1, y.shape[1]))
            self._held()
        del session
        release_free_memory()  # every layer's outputs of a few images, and the float model's session

    def _held(self) -> None:
        held = self.frontier.bytes + (self.targets.bytes if self.targets is not None else 0)
        self.peak_bytes = max(self.peak_bytes, held)

    def _pick(self, k: int, positions: int) -> np.ndarray:
        """The output positions sampled for layer ``k``, (rows, take), sorted per image."""
        if k not in self.picks:
            take = min(max(1, self.max_patches[k] // max(1, self.rows)), positions)
            rng = np.random.default_rng([self.seed, k])
            draws = [rng.choice(positions, take, replace=False) for _ in range(self.rows)]
            self.picks[k], self.positions[k] = np.sort(np.stack(draws), axis=1), positions
        return self.picks[k]

    def _run(self, s: int, xs: _Rows | None) -> None:
        """Run segment ``s`` over every image: its writes join the frontier; ``xs`` (if given)
        gets layer ``s``'s sampled input patches."""
        seg, layer = self.segments[s], self.layers[s]
        outputs = [*seg.writes, *([seg.data] if seg.data not in seg.reads else [])]
        session = None
        if outputs:
            types = {name: self.frontier.meta[name][0] for name in seg.reads if name in self.frontier.meta}
            model = _model(self.qdq, self.graph, outputs, set(seg.reads), types, nodes=seg.nodes)
            session = cpu_session(model, self.disabled, self.threads, arena=False)
        for row, part in self._chunks():
            feeds = {
                name: part if name in self.graph.inputs else self.frontier.read(name, row, len(part))
                for name in seg.reads
            }
            result = {}
            if session is not None:
                wanted = {i.name for i in session.get_inputs()}
                run = session.run(outputs, {n: v for n, v in feeds.items() if n in wanted})
                result = dict(zip(outputs, run, strict=True))
            for name in seg.writes:
                self.frontier.append(name, result[name])
            self._held()
            if xs is not None:
                x = feeds[seg.data] if seg.data in feeds else result[seg.data]
                pick = self.picks[s][row : row + len(part)]
                xs.add(patch_rows(layer, x, pick, self.positions[s]))
        for name in seg.drops:
            if name in self.frontier.meta:
                self.frontier.drop(name)
        self.done = s


def _model(base: Any, graph: _Graph, outputs: Sequence[str], inputs: set[str], types: dict[str, np.dtype],
           nodes: Sequence[int] | None = None) -> Any:  # fmt: skip
    """A model of ``base``'s nodes that computes ``outputs`` from ``inputs`` (graph inputs keep
    their declared types; others get ``types``)."""
    import onnx
    from onnx import helper

    if nodes is None:
        nodes = graph.closure(outputs, inputs)
    m = onnx.ModelProto()
    m.ir_version = base.ir_version
    m.opset_import.extend(base.opset_import)
    m.functions.extend(base.functions)
    g = m.graph
    g.name = "edgeres_rounding_segment"
    g.node.extend(graph.nodes[i] for i in nodes)
    used = {x for i in nodes for x in graph.uses(i)}  # as the nodes read them now
    g.initializer.extend(t for t in base.graph.initializer if t.name in used)
    declared = {i.name: i for i in base.graph.input}
    for name in sorted(inputs & used):
        if name in declared:
            g.input.append(declared[name])
        else:
            elem = helper.np_dtype_to_tensor_dtype(types[name])
            g.input.append(helper.make_tensor_value_info(name, elem, None))
    g.output.extend(helper.make_empty_tensor_value_info(o) for o in outputs)
    return m
