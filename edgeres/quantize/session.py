"""The calibration session: the model with its calibrated tensors as extra outputs, on ONNX Runtime.

ONNX Runtime's CPU provider runs convolutions in a blocked channel layout (NCHWc: 8 or 16
channels interleaved, by the CPU's vector width) and reorders a tensor back to NCHW wherever
something outside that layout reads it; every extra graph output is such a reader. A histogram
does not care about the order of the values, so :func:`calibration_session` asks ONNX Runtime
for the blocked tensors themselves: it saves the session's optimized graph (a documented
session option), drops the ``ReorderOutput`` nodes that only fed graph outputs, and runs that
graph with graph optimization off (it is already optimized, for this machine). A reorder is
dropped only where the channel count is a multiple of 16, so the blocked tensor holds exactly
the tensor's values, no padding channels.

Measured on resnet50 (batch 1, 2 threads, 73 tensors fetched): the plain model ran in 33.7 ms,
the model with the extra outputs in 51.7 ms, of which its 71 reorders took 8.3 ms; without
them it ran in 44.3 ms. Anything unexpected in the optimized graph (another ONNX Runtime
version, a provider that does not block) leaves the ordinary session in place.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeres.errors import EdgeresError, first_line

__all__ = ["CalibrationSession", "calibration_session"]

log = logging.getLogger(__name__)

_BLOCKED_DOMAIN = "com.microsoft.nchwc"
#: Channel counts that are a multiple of this have no padding channels in any NCHWc block size.
_WHOLE_BLOCKS = 16
_MAX_SAVED_BYTES = 1 << 30


@dataclass
class CalibrationSession:
    """An ONNX Runtime session and the output names that give the calibrated tensors, in order."""

    session: Any
    #: What to ask the session for: ``tensors[i]`` is read from output ``outputs[i]``.
    outputs: list[str]
    tensors: list[str]
    path: Path

    def input_names(self) -> set[str]:
        return {i.name for i in self.session.get_inputs()}

    def fixed_batch(self) -> int | None:
        """The batch size the model's inputs fix, if any."""
        return next((d for i in self.session.get_inputs() for d in i.shape[:1] if isinstance(d, int)), None)

    def run(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The calibrated tensors' values for ``feed``, in :attr:`tensors` order (layout aside)."""
        try:
            values: list[np.ndarray] = self.session.run(self.outputs, feed)
        except Exception as exc:  # ORT raises its own types (InvalidArgument, Fail, ...)
            reason = first_line(exc)
            raise EdgeresError(
                f"ONNX Runtime could not run {self.path.name} on a calibration batch ({reason}); "
                "check that the images are preprocessed for this model's input"
            ) from exc
        return values


def _options(*, optimize: bool) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    options.log_severity_level = 3
    # ORT's idle threads spin after each run by default and take the cores from the histogram
    # updates (resnet20 here: ORT's runs and the updates both took 1.4-2x longer with spinning on).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _create(model: onnx.ModelProto, options: Any, path: Path) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT raises its own types (InvalidGraph, Fail, ...)
        raise EdgeresError(f"ONNX Runtime cannot run '{path}' for calibration: {exc}") from exc


def calibration_session(
    model: onnx.ModelProto, tensors: Sequence[str], path: Path, *, blocked: bool = True
) -> CalibrationSession:
    """A session of ``model`` (consumed: outputs are added to it) that outputs ``tensors``.

    ``blocked``: fetch tensors in ONNX Runtime's blocked layout where it can (see the module
    docstring); False gives the ordinary session, every tensor in its own layout.
    """
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in tensors if n not in present)
    plain = CalibrationSession(None, list(tensors), list(tensors), path)
    # The optimized graph is saved and read back as one protobuf, which holds less than 2 GB.
    if not blocked or model.ByteSize() > _MAX_SAVED_BYTES:
        plain.session = _create(model, _options(optimize=True), path)
        return plain
    with tempfile.TemporaryDirectory(prefix="edgeres-calibration-") as tmp:
        options = _options(optimize=True)
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        plain.session = _create(model, options, path)
        try:
            optimized = onnx.load(options.optimized_model_filepath)
        except Exception as exc:  # any failure leaves the ordinary session
            log.debug("no optimized graph to fetch blocked tensors from: %s", exc)
            return plain
    outputs = _skip_reorders(optimized, tensors)
    if outputs is None:
        return plain
    plain.session = None  # one session's weights in memory at a time
    try:
        session = _create(optimized, _options(optimize=False), path)
    except EdgeresError as exc:
        log.debug("the optimized graph without reorders does not load (%s); reordering", exc)
        plain.session = _create(model, _options(optimize=True), path)
        return plain
    return CalibrationSession(session, outputs, list(tensors), path)


def _skip_reorders(graph_model: onnx.ModelProto, tensors: Sequence[str]) -> list[str] | None:
    """Make the blocked tensors behind ``tensors``' reorders graph outputs; their names, or None."""
    graph = graph_model.graph
    producer = {out: node for node in graph.node for out in node.output}
    read = {name for node in graph.node for name in node.input}
    outputs, dropped = [], []
    for name in tensors:
        node = producer.get(name)
        if (
            node is not None
            and node.domain == _BLOCKED_DOMAIN
            and node.op_type == "ReorderOutput"
            and name not in read
            and _attribute(node, "channels") % _WHOLE_BLOCKS == 0
        ):
            outputs.append(node.input[0])
            dropped.append(node)
        else:
            outputs.append(name)
    if not dropped:
        return None
    for node in dropped:
        graph.node.remove(node)
    kept = [o for o in graph.output if o.name not in set(tensors)]
    del graph.output[:]
    graph.output.extend(kept)
    graph.output.extend(onnx.ValueInfoProto(name=n) for n in dict.fromkeys(outputs))
    return outputs


def _attribute(node: onnx.NodeProto, name: str) -> int:
    """An int attribute of ``node``; -1 (not a multiple of anything useful) when it is absent."""
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return -1
