"""Streaming calibration: one ONNX Runtime pass, a histogram per tensor, no stored activations.

:func:`collect_statistics` adds the tensors to calibrate as outputs of an in-memory copy of the
model, runs it in ONE ``InferenceSession`` batch by batch, folds each batch into the tensors'
:class:`StreamingHistogram` and drops it, so memory does not grow with the number of images.
:meth:`CalibrationStats.ranges` turns the histograms into ranges by any method, so one pass serves
them all; :func:`collect_ranges` does both.

By default every float activation is calibrated: the graph inputs and every float node output
that is not computed from constants alone. Outputs that are a function of one calibrated tensor
are derived instead of fetched: a ReLU's histogram from its input's (exactly, see
:meth:`StreamingHistogram.relu`), and Identity/Flatten/Reshape/Squeeze/Unsqueeze/Transpose
outputs share their input's (same values). Fewer outputs means less copying and memory.

A tensor read by nothing but one ReLU (a conv's output before its ReLU) is the exception: the
ReLU's output is fetched and the tensor takes its range ("relu_output"). Quantizing x with the
range of max(x, 0) gives the same ReLU output (what falls below zero becomes zero either way);
ONNX Runtime's quantizer replaces such a range by the ReLU's anyway (``adjust_tensor_ranges``)
and TensorRT fuses conv and ReLU. Fetching the ReLU's output lets ONNX Runtime fuse conv and
ReLU in the calibration session: on resnet50 (batch 1, 2 threads) a run fetching the conv
outputs took 48.7 ms, one fetching the ReLU outputs 44.4 ms, against 29.8 ms for the plain model.
The session (:mod:`edgeres.quantize.session`) hands most tensors over in ONNX Runtime's blocked
channel layout, which saves a reorder each; a histogram does not care about the order of values.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from collections.abc import Iterable, Mapping, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
import torch

from edgeres.errors import EdgeresError, UsageError
from edgeres.quantize.histogram import StreamingHistogram, sample_stride
from edgeres.quantize.methods import compute_range
from edgeres.quantize.ranges import Ranges
from edgeres.quantize.session import calibration_session
from edgeres.quantize.settings import CalibrationSettings, Method

__all__ = ["CalibrationPlan", "CalibrationResult", "CalibrationStats", "DataReader", "calibration_plan"]
__all__ += ["collect_ranges", "collect_statistics", "compute_ranges"]

log = logging.getLogger(__name__)

_FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE})
_SAME_VALUES = frozenset({"Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose"})


class DataReader(Protocol):
    """ONNX Runtime's ``CalibrationDataReader`` protocol (:class:`edgeres.data.BatchReader` has it)."""

    def get_next(self) -> Mapping[str, np.ndarray] | None: ...


@dataclass
class CalibrationStats:
    """The histograms of one calibration pass, by tensor name (graph order)."""

    histograms: dict[str, StreamingHistogram]
    num_images: int
    #: Images per ONNX Runtime run (``settings.batch_size`` or the automatic choice).
    batch_size: int
    settings: CalibrationSettings
    seconds: float
    #: Peak resident memory of this process so far (ru_maxrss), in MB.
    peak_rss_mb: float | None = None
    #: Tensors whose histograms were derived from another's: name -> (how, source).
    derived: dict[str, tuple[str, str]] = field(default_factory=dict)

    def ranges(self, method: Method | None = None, *, percentile: float | None = None) -> Ranges:
        """Ranges by ``method`` (default: the settings'), with ``percentile`` for that method."""
        changes = {"method": method, "percentile": percentile}
        return compute_ranges(
            self, self.settings.replace(**{k: v for k, v in changes.items() if v is not None})
        )

    @property
    def nbytes(self) -> int:
        """Memory held by the histograms (shared ones counted once)."""
        return sum(h.nbytes for h in {id(h): h for h in self.histograms.values()}.values())


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`collect_ranges` computed."""

    ranges: Ranges
    num_images: int
    method: Method
    settings: CalibrationSettings
    seconds: float
    peak_rss_mb: float | None = None

    def summary(self) -> str:
        n, images, s = len(self.ranges), self.num_images, self.seconds
        return f"{n} tensors calibrated by {self.method} on {images} images in {s:.1f} s"


def compute_ranges(stats: CalibrationStats, settings: CalibrationSettings) -> Ranges:
    """The range of every tensor in ``stats`` by ``settings.method``."""
    options: dict[str, Any] = {
        "percentile": settings.percentile,
        "num_quantized_bins": settings.num_quantized_bins,
    }
    return {
        n: compute_range(h, settings.method, n, **options) for n, h in stats.histograms.items() if h.count
    }


def collect_ranges(
    onnx_path: str | os.PathLike[str],
    reader: DataReader,
    settings: CalibrationSettings | None = None,
    *,
    tensors: Iterable[str] | None = None,
    progress: bool = True,
) -> CalibrationResult:
    """Calibrate ``onnx_path`` on ``reader``'s batches: :func:`collect_statistics` then the ranges."""
    settings = settings or CalibrationSettings()
    stats = collect_statistics(onnx_path, reader, settings, tensors=tensors, progress=progress)
    start = time.perf_counter()
    ranges = compute_ranges(stats, settings)
    seconds = stats.seconds + time.perf_counter() - start
    return CalibrationResult(ranges, stats.num_images, settings.method, settings, seconds, stats.peak_rss_mb)


@dataclass(frozen=True)
class CalibrationPlan:
    """Which tensors are calibrated (graph order), which ONNX Runtime must output, which are derived."""

    tensors: tuple[str, ...]
    fetched: tuple[str, ...]
    #: name -> ("relu", source): histogram of max(source, 0); ("same", source): the same values;
    #: ("relu_output", relu): ``name`` is read only by the ReLU whose output is ``relu``, and
    #: takes that output's histogram (see the module docstring).
    derived: Mapping[str, tuple[str, str]]
    #: Fetched tensors that cannot be negative (ReLU outputs): their histograms update faster.
    nonnegative: frozenset[str] = frozenset()


def calibration_plan(model: onnx.ModelProto, tensors: Iterable[str] | None = None) -> CalibrationPlan:
    """What to calibrate in ``model`` (with shape-inferred types): ``tensors``, or every float activation."""
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    constant = {init.name for init in graph.initializer} | {""}
    activations = [i.name for i in graph.input if i.name not in constant]
    for node in graph.node:
        if all(name in constant for name in node.input):
            constant.update(node.output)  # Constant nodes and anything computed from constants only
        else:
            activations.extend(node.output)
    floats = [name for name in activations if types.get(name) in _FLOAT_TYPES]
    if tensors is None:
        wanted = set(floats)
    else:
        wanted = set(tensors)
        unknown = sorted(wanted - set(floats))
        if unknown:
            raise UsageError(
                f"cannot calibrate {', '.join(unknown[:5])}: not a float activation of the model "
                "(check the tensor names with an ONNX viewer)"
            )
    relu_of = _sole_relu_consumers(graph, wanted)
    plan: dict[str, tuple[str, str] | None] = {i.name: None for i in graph.input if i.name in wanted}
    for name in plan:
        if name in relu_of:
            plan[name] = ("relu_output", relu_of[name])
    for node in graph.node:
        source = node.input[0] if node.input else ""
        for out in node.output:
            if out not in wanted or out in plan:
                continue
            if out in relu_of:
                plan[out] = ("relu_output", relu_of[out])
            elif node.op_type == "Relu" and source in plan and source not in relu_of:
                plan[out] = ("relu", source)
            elif node.op_type in _SAME_VALUES and source in plan:
                plan[out] = ("same", source)
            else:
                plan[out] = None
    fetched = tuple(name for name, how in plan.items() if how is None)
    derived = {name: how for name, how in plan.items() if how is not None}
    relus = {out for node in graph.node if node.op_type == "Relu" for out in node.output}
    return CalibrationPlan(tuple(plan), fetched, derived, frozenset(relus.intersection(fetched)))


def _sole_relu_consumers(graph: onnx.GraphProto, wanted: set[str]) -> dict[str, str]:
    """Wanted tensors read by nothing but one ReLU whose output is wanted too: tensor -> ReLU output."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in set(node.input):
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    found = {}
    for name in wanted - outputs:
        nodes = readers.get(name, [])
        if len(nodes) == 1 and nodes[0].op_type == "Relu" and nodes[0].output[0] in wanted:
            found[name] = nodes[0].output[0]
    return found


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB on Linux
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def collect_statistics(
    onnx_path: str | os.PathLike[str],
    reader: DataReader,
    settings: CalibrationSettings | None = None,
    *,
    tensors: Iterable[str] | None = None,
    progress: bool = True,
) -> CalibrationStats:
    """One pass of ``reader`` (rewound first when it can) through ``onnx_path``; see the module docstring.

    Batches from the reader are split into runs of ``settings.batch_size`` images (or, when
    None, as many as keep one run's activations under the budget, measured on a first image).
    """
    settings = settings or CalibrationSettings()
    path = Path(onnx_path)
    if not path.is_file():
        raise UsageError(f"ONNX model '{path}' does not exist")
    start = time.perf_counter()
    try:
        model = onnx.load(str(path))
        plan = calibration_plan(_typed_without_weights(model), tensors)
    except EdgeresError:  # the plan's own errors (unknown tensors) say what to do
        raise
    except Exception as exc:  # protobuf and onnx raise many types for a damaged file
        raise EdgeresError(f"cannot read '{path}' as an ONNX model ({exc}); re-export it") from exc
    if not plan.tensors:
        raise UsageError("no tensors to calibrate were given; name at least one, or none for all")
    session = calibration_session(model, plan.fetched, path)  # our copy of the model, extended
    del model
    fetched = list(plan.fetched)
    input_names = session.input_names()
    fixed = session.fixed_batch()
    histograms = {name: StreamingHistogram(settings.num_bins) for name in fetched}
    batch_size = fixed or settings.batch_size
    num_images = 0
    rewind = getattr(reader, "rewind", None)
    if callable(rewind):
        rewind()
    from edgeres.progress import progress_bar

    total = len(reader) if isinstance(reader, Sized) else None
    bar = progress_bar(total=total, desc="calibrating", unit="batch", enabled=progress)
    # Histograms are updated by single-threaded torch calls on a thread pool, one tensor per task,
    # while ONNX Runtime runs the next batch. torch's own OpenMP threads wait for each other at
    # every call: with another busy process on the cores that made the updates of a resnet50
    # image take 1090 ms instead of 70 here (torch.set_num_threads is global: restored after).
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="calibration")
    pending: list[Future[None]] = []
    try:
        while (feed := reader.get_next()) is not None:
            size = _batch_len(feed, input_names)
            if fixed and size % fixed:
                raise UsageError(
                    f"{path.name} takes batches of exactly {fixed} images but the reader gave {size}; "
                    "use a multiple of it or export the model with a dynamic batch"
                )
            done = 0
            while done < size:
                step = batch_size or 1  # None: measure one image first, then size the batches
                chunk = {k: v[done : done + step] for k, v in feed.items() if k in input_names}
                outputs = session.run(chunk)
                if batch_size is None:
                    per_image = sum(o.nbytes for o in outputs)
                    batch_size = settings.resolve_batch_size(per_image)
                    log.info("calibration batches of %d (%.1f MB/image)", batch_size, per_image / 1e6)
                _finish(pending)  # the previous batch: at most two batches' outputs are alive
                images, budget = min(step, size - done), settings.sample_per_image
                for name, value in zip(fetched, outputs, strict=True):
                    stride = sample_stride(value.size // images, budget)
                    nonnegative = name in plan.nonnegative
                    update = partial(histograms[name].update, stride=stride, nonnegative=nonnegative)
                    pending.append(pool.submit(update, value, name))
                del outputs, chunk  # nothing of a batch outlives its updates
                done += step
            num_images += size
            bar.update(1)
            del feed
        _finish(pending)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        torch.set_num_threads(torch_threads)
        bar.close()
    if num_images == 0:
        raise UsageError("the calibration reader gave no images; give a calibration set with images in it")
    for name in plan.derived:
        _derive(name, plan.derived, histograms)
    ordered = {name: histograms[name] for name in plan.tensors}
    seconds = time.perf_counter() - start
    return CalibrationStats(
        ordered, num_images, batch_size or 1, settings, seconds, _peak_rss_mb(), dict(plan.derived)
    )


def _typed_without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with shape-inferred types and no initializer data (types need none).

    Shape inference copies the model twice through C++; without its weights, resnet50's took
    0.16 s instead of 1.4 s here (and no second copy of the weights in memory).
    """
    light = onnx.ModelProto()
    light.CopyFrom(model)
    for init in light.graph.initializer:
        for data in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
            init.ClearField(data)
    return onnx.shape_inference.infer_shapes(light)


def _derive(
    name: str, derived: Mapping[str, tuple[str, str]], histograms: dict[str, StreamingHistogram]
) -> StreamingHistogram:
    """The histogram of derived tensor ``name``, deriving its source first where that is derived too."""
    if name not in histograms:
        how, source = derived[name]
        base = _derive(source, derived, histograms)
        histograms[name] = base.relu() if how == "relu" else base
    return histograms[name]


def _finish(pending: list[Future[None]]) -> None:
    for future in pending:
        future.result()  # re-raises, e.g. NonFiniteActivationError
    pending.clear()


def _batch_len(feed: Mapping[str, np.ndarray], input_names: set[str]) -> int:
    missing = sorted(input_names - set(feed))
    if missing:
        raise UsageError(f"the calibration reader gave no '{missing[0]}', which the model needs as input")
    sizes = sorted({len(feed[name]) for name in input_names})
    if len(sizes) != 1:
        raise UsageError(f"the calibration reader's inputs have different batch sizes {sizes}")
    return sizes[0]
